"""torchvision DenseNet keys -> ours.

torchvision puts everything in ``features``: ``conv0``/``norm0`` (our ``stages.0``),
``denseblockN`` (our ``stages.N.block``), ``transitionN`` (it opens our ``stages.(N+1)``) and the
final ``norm5`` (closing our last stage); the linear is ``classifier``. Dense layers count from 1
there, from 0 here. The checkpoints torchvision downloads still spell a layer's modules ``norm.1``,
``conv.2`` (torchvision renames them while loading), so the rules accept both spellings.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references
from vision_backbones.models.densenet import VARIANTS

_MAX_LAYERS = max(d for config in VARIANTS.values() for d in config.depths)
_NUM_BLOCKS = 4

RULES: list[tuple[str, str]] = [
    (r"features\.conv0\.weight", r"stages.0.conv.weight"),
    (r"features\.norm0\.(.+)", r"stages.0.norm.\1"),
    # denselayer<j> (from 1) -> layers.<j-1>; "norm1" or the legacy "norm.1" alike.
    *(
        (
            rf"features\.denseblock(\d)\.denselayer{j}\.(norm|conv)\.?([12])\.(.+)",
            rf"stages.\1.block.layers.{j - 1}.\2\3.\4",
        )
        for j in range(1, _MAX_LAYERS + 1)
    ),
    # transition<i> sits between blocks i and i+1: it opens our stage i+1.
    *(
        (rf"features\.transition{i}\.(norm|conv)\.(.+)", rf"stages.{i + 1}.transition.\1.\2")
        for i in range(1, _NUM_BLOCKS)
    ),
    (r"features\.norm5\.(.+)", rf"stages.{_NUM_BLOCKS}.norm.\1"),
    (r"classifier\.(weight|bias)", r"head.fc.\1"),
]

register_references([Reference("torchvision", name, name, RULES) for name in VARIANTS])
