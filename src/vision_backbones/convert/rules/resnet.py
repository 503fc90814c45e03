"""torchvision and timm ResNet keys -> ours.

Both libraries name the stem ``conv1``/``bn1``, the residual stages ``layer1..4``, a block's
convs and norms ``convK``/``bnK`` and its projection ``downsample.0`` (conv) / ``.1`` (norm).
Our level 0 is the stem conv, so ``layerN`` is our ``stages.N``.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

_BLOCK = r"layer(\d)\.(\d+)"
_OURS = r"stages.\1.blocks.\2"

RULES: tuple[tuple[str, str], ...] = (
    (r"conv1\.weight", r"stages.0.conv.weight"),
    (r"bn1\.(.+)", r"stages.0.norm.\1"),
    (rf"{_BLOCK}\.conv(\d)\.weight", rf"{_OURS}.conv\3.conv.weight"),
    (rf"{_BLOCK}\.bn(\d)\.(.+)", rf"{_OURS}.conv\3.norm.\4"),
    (rf"{_BLOCK}\.downsample\.0\.weight", rf"{_OURS}.shortcut.conv.weight"),
    (rf"{_BLOCK}\.downsample\.1\.(.+)", rf"{_OURS}.shortcut.norm.\3"),
    (r"fc\.(weight|bias)", r"head.fc.\1"),
)

_TORCHVISION_NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)

register_references(
    [Reference("torchvision", name, name, RULES) for name in _TORCHVISION_NAMES]
    # timm's plain resnet50 is the same architecture (7x7 stem, stride in the 3x3, 1x1 projection).
    + [Reference("timm", "resnet50", "resnet50", RULES)]
)
