"""timm ``legacy_se*`` / ``legacy_senet154`` keys (Cadene's port of the Caffe models) -> ours.

timm names the stem ``layer0.conv1..3``/``bn1..3`` (one 7x7 conv, or three 3x3 for SENet-154), the SE
stages ``layer1..4``, a block's convs ``convK``/``bnK``, its SE convs ``se_module.fc1``/``fc2`` and its
projection ``downsample.0`` (conv) / ``.1`` (norm); the classifier is ``last_linear``.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

_BLOCK = r"layer(\d)\.(\d+)"
_OURS = r"stages.\1.blocks.\2"

RULES: tuple[tuple[str, str], ...] = (
    *((rf"layer0\.conv{k + 1}\.weight", rf"stages.0.{k}.conv.weight") for k in range(3)),
    *((rf"layer0\.bn{k + 1}\.(.+)", rf"stages.0.{k}.norm.\1") for k in range(3)),
    (rf"{_BLOCK}\.conv(\d)\.weight", rf"{_OURS}.conv\3.conv.weight"),
    (rf"{_BLOCK}\.bn(\d)\.(.+)", rf"{_OURS}.conv\3.norm.\4"),
    (rf"{_BLOCK}\.se_module\.fc1\.(.+)", rf"{_OURS}.se.reduce.\3"),
    (rf"{_BLOCK}\.se_module\.fc2\.(.+)", rf"{_OURS}.se.expand.\3"),
    (rf"{_BLOCK}\.downsample\.0\.weight", rf"{_OURS}.shortcut.conv.weight"),
    (rf"{_BLOCK}\.downsample\.1\.(.+)", rf"{_OURS}.shortcut.norm.\3"),
    (r"last_linear\.(weight|bias)", r"head.fc.\1"),
)

register_references(
    [
        Reference("timm", f"legacy_{name}", name, RULES)
        for name in ("seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d", "seresnext101_32x4d", "senet154")
    ]
)
