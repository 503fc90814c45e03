"""torchvision RegNet keys -> ours.

torchvision names the stem ``stem.0`` (conv) / ``stem.1`` (norm), the stages
``trunk_output.block{s}`` (``s`` = 1..4) and their blocks ``block{s}-{i}``; a block's bottleneck is
``f.a`` / ``f.b`` / ``f.c`` (each ``.0`` conv, ``.1`` norm) with ``f.se.fc1`` / ``f.se.fc2``, and its
projection shortcut ``proj``. Our level 0 is the stem conv, so torchvision's ``block{s}`` is our
``stages.{s}``, and block ``i`` of it ``stages.{s}.blocks.{i}``.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

_BLOCK = r"trunk_output\.block(\d)\.block\d-(\d+)"
_OURS = r"stages.\1.blocks.\2"
_CONV_NORM = {"0": "conv", "1": "norm"}  # torchvision's Conv2dNormActivation children
_PARTS = {r"f\.a": "conv1", r"f\.b": "conv2", r"f\.c": "conv3", "proj": "shortcut"}
_SQUEEZE_EXCITE = {"fc1": "reduce", "fc2": "expand"}

RULES: tuple[tuple[str, str], ...] = (
    *((rf"stem\.{index}\.(.+)", rf"stages.0.{ours}.\1") for index, ours in _CONV_NORM.items()),
    *(
        (rf"{_BLOCK}\.{theirs}\.{index}\.(.+)", rf"{_OURS}.{ours}.{layer}.\3")
        for theirs, ours in _PARTS.items()
        for index, layer in _CONV_NORM.items()
    ),
    *(
        (rf"{_BLOCK}\.f\.se\.{theirs}\.(weight|bias)", rf"{_OURS}.se.{ours}.\3")
        for theirs, ours in _SQUEEZE_EXCITE.items()
    ),
    (r"fc\.(weight|bias)", r"head.fc.\1"),
)

_TORCHVISION_NAMES = tuple(
    f"regnet_{kind}_{size}"
    for kind in ("x", "y")
    for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")
)

register_references([Reference("torchvision", name, name, RULES) for name in _TORCHVISION_NAMES])
