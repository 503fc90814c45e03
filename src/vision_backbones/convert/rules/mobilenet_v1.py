"""timm MobileNet v1 (``mobilenetv1_*``, built by timm's EfficientNet builder) keys -> ours.

timm: ``conv_stem``/``bn1`` (our ``stem``), ``blocks.<i>.<j>`` with ``conv_dw``/``bn1`` and
``conv_pw``/``bn2`` (our ``stages.<i>.<j>.depthwise`` / ``.pointwise``), ``classifier``.
``mobilenetv1_125`` is the same network at width multiplier 1.25.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

_BLOCK = r"blocks\.(\d+)\.(\d+)"
_OURS = r"stages.\1.\2"

RULES: tuple[tuple[str, str], ...] = (
    (r"conv_stem\.weight", r"stem.conv.weight"),
    (r"bn1\.(.+)", r"stem.norm.\1"),
    (rf"{_BLOCK}\.conv_dw\.weight", rf"{_OURS}.depthwise.conv.weight"),
    (rf"{_BLOCK}\.bn1\.(.+)", rf"{_OURS}.depthwise.norm.\3"),
    (rf"{_BLOCK}\.conv_pw\.weight", rf"{_OURS}.pointwise.conv.weight"),
    (rf"{_BLOCK}\.bn2\.(.+)", rf"{_OURS}.pointwise.norm.\3"),
    (r"classifier\.(weight|bias)", r"head.fc.\1"),
)

register_references(
    [
        Reference("timm", "mobilenetv1_100", "mobilenet_v1", RULES),
        Reference("timm", "mobilenetv1_125", "mobilenet_v1", RULES, overrides={"width_multiplier": 1.25}),
    ]
)
