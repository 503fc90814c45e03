"""torchvision MNASNet keys -> ours.

torchvision keeps the whole network in one ``layers`` sequence: the stem conv/BN (``layers.0/1``), the
separable block's depthwise conv/BN (``layers.3/4``) and pointwise conv/BN (``layers.6/7``), six stacks
of inverted residuals (``layers.8..13``, each block's convs/BNs at ``layers.{0,1}`` expand,
``{3,4}`` depthwise, ``{6,7}`` project), the head conv/BN (``layers.14/15``) and ``classifier.1``.
Our names for the same layers come from ``layer_names`` (stage ``i`` opens at each strided layer; the
head conv is ``head_conv``).
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references
from vision_backbones.layers.inverted_residual import layer_names
from vision_backbones.models.mnasnet import VARIANTS, block_specs

# Module index inside torchvision's conv/BN pairs -> our ConvNormAct.
_BLOCK_PARTS = {
    0: "expand.conv",
    1: "expand.norm",
    3: "depthwise.conv",
    4: "depthwise.norm",
    6: "project.conv",
    7: "project.norm",
}


def _rules() -> list[tuple[str, str]]:
    # Depths are not scaled, so every width shares one layout; names: stem, blocks..., head conv.
    ours = layer_names(block_specs(VARIANTS["mnasnet1_0"]))
    stem, sep_block, blocks, head = ours[0], ours[1], ours[2:-1], ours[-1]
    rules = [
        (r"layers\.0\.weight", rf"{stem}.conv.weight"),
        (r"layers\.1\.(.+)", rf"{stem}.norm.\1"),
        # The separable block has no expand conv; its parts sit at torchvision's layers.3..7.
        *((rf"layers\.{k}\.(.+)", rf"{sep_block}.{part}.\1") for k, part in _BLOCK_PARTS.items() if k >= 3),
        (r"layers\.14\.weight", rf"{head}.conv.weight"),
        (r"layers\.15\.(.+)", rf"{head}.norm.\1"),
        (r"classifier\.1\.(weight|bias)", r"head.fc.\1"),
    ]
    # torchvision stacks: layers.8..13, with the repeat counts of the searched rows after the first.
    index = 0
    for stack, row in enumerate(VARIANTS["mnasnet1_0"].rows[1:]):
        for j in range(row.repeats):
            for part_index, part in _BLOCK_PARTS.items():
                rules.append((rf"layers\.{8 + stack}\.{j}\.layers\.{part_index}\.(.+)", rf"{blocks[index]}.{part}.\1"))
            index += 1
    return rules


RULES = _rules()

register_references([Reference("torchvision", name, name, RULES) for name in VARIANTS])
