"""torchvision ConvNeXt keys -> ours.

torchvision keeps everything in one ``features`` Sequential: ``features.0`` is the stem (conv, norm),
``features.1/3/5/7`` the four stages of blocks and ``features.2/4/6`` the downsampling layers (norm,
conv) between them. Ours opens stage ``k`` with its downsampling layer, so ``features.{2k-1}``
becomes ``stages.k.downsample`` and ``features.{2k+1}`` becomes ``stages.k.blocks``. Inside a block
torchvision's ``block`` Sequential is ``0`` dwconv, ``1`` permute, ``2`` norm, ``3`` fc1, ``4`` GELU,
``5`` fc2; its ``layer_scale`` keeps its name and shape. The classifier is ``0`` norm, ``1`` flatten,
``2`` fc.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

_BLOCK_PARTS = {"0": "conv_dw", "2": "norm", "3": "fc1", "5": "fc2"}
_NUM_STAGES = 4

RULES: tuple[tuple[str, str], ...] = (
    (r"features\.0\.0\.(weight|bias)", r"stem.conv.\1"),
    (r"features\.0\.1\.(weight|bias)", r"stem.norm.\1"),
    *(
        (rf"features\.{2 * k + 1}\.(\d+)\.block\.{index}\.(weight|bias)", rf"stages.{k}.blocks.\1.{ours}.\2")
        for k in range(_NUM_STAGES)
        for index, ours in _BLOCK_PARTS.items()
    ),
    *(
        (rf"features\.{2 * k + 1}\.(\d+)\.layer_scale", rf"stages.{k}.blocks.\1.layer_scale")
        for k in range(_NUM_STAGES)
    ),
    *(
        (rf"features\.{2 * k}\.{index}\.(weight|bias)", rf"stages.{k}.downsample.{ours}.\1")
        for k in range(1, _NUM_STAGES)
        for index, ours in (("0", "norm"), ("1", "conv"))
    ),
    (r"classifier\.0\.(weight|bias)", r"head.norm.\1"),
    (r"classifier\.2\.(weight|bias)", r"head.fc.\1"),
)

_TORCHVISION_NAMES = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")

register_references([Reference("torchvision", name, name, RULES) for name in _TORCHVISION_NAMES])
