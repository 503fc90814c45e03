"""timm ``legacy_xception`` keys -> ours.

timm names the stem ``conv1``/``bn1``, ``conv2``/``bn2``, the twelve residual blocks ``block1..12``
(a block's ``rep`` is a flat list of ReLU, separable conv ``convN.conv1`` (depthwise) /
``.pointwise`` and BN; block 1 has no leading ReLU, so its indices start one lower), projections
``skip``/``skipbn``, the exit flow's last separable convs ``conv3``/``bn3``, ``conv4``/``bn4`` and the
classifier ``fc``. Our blocks sit in stages: block 1 -> ``stages.1.0``, 2 -> ``stages.2.0``,
3..11 -> ``stages.3.0..8``, 12 -> ``stages.4.0``; ``conv3``/``conv4`` -> ``stages.4.1``/``stages.4.2``.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

# timm block number -> our "stages.<i>.<j>".
_BLOCKS = {1: "stages.1.0", 2: "stages.2.0", **{k: f"stages.3.{k - 3}" for k in range(3, 12)}, 12: "stages.4.0"}


def _separable(source: str, target: str) -> list[tuple[str, str]]:
    """timm ``SeparableConv2d`` (``conv1`` is the depthwise conv) -> ours."""
    return [
        (rf"{source}\.conv1\.weight", rf"{target}.depthwise.weight"),
        (rf"{source}\.pointwise\.weight", rf"{target}.pointwise.weight"),
    ]


def _block_rules(number: int, ours: str) -> list[tuple[str, str]]:
    offset = 0 if number == 1 else 1  # position of the separable conv inside each (ReLU, conv, BN) triple
    rules = []
    for unit in range(3):  # blocks have 2 or 3 units; rules for a missing unit never match
        conv, norm = 3 * unit + offset, 3 * unit + offset + 1
        rules += _separable(rf"block{number}\.rep\.{conv}", f"{ours}.units.{unit}.conv")
        rules.append((rf"block{number}\.rep\.{norm}\.(.+)", rf"{ours}.units.{unit}.norm.\1"))
    return [
        *rules,
        (rf"block{number}\.skip\.weight", rf"{ours}.shortcut.conv.weight"),
        (rf"block{number}\.skipbn\.(.+)", rf"{ours}.shortcut.norm.\1"),
    ]


RULES: list[tuple[str, str]] = [
    (r"conv1\.weight", r"stages.0.0.conv.weight"),
    (r"bn1\.(.+)", r"stages.0.0.norm.\1"),
    (r"conv2\.weight", r"stages.0.1.conv.weight"),
    (r"bn2\.(.+)", r"stages.0.1.norm.\1"),
    *(rule for number, ours in _BLOCKS.items() for rule in _block_rules(number, ours)),
    *_separable(r"conv3", "stages.4.1.conv"),
    (r"bn3\.(.+)", r"stages.4.1.norm.\1"),
    *_separable(r"conv4", "stages.4.2.conv"),
    (r"bn4\.(.+)", r"stages.4.2.norm.\1"),
    (r"fc\.(weight|bias)", r"head.fc.\1"),
]

register_references([Reference("timm", "legacy_xception", "xception", RULES)])
