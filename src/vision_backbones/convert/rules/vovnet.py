"""timm VoVNet checkpoints -> ours.

timm follows the original detectron2 code, not the paper: stage 1's max pool is folded into a
stride-2 last stem conv (timm ``stem.2``, which opens our ``stages.1``), pools use ``ceil_mode``,
and eSE sits only in each stage's last block. timm ``stages.i`` is our ``stages.(i+1)``: our
``stages.0`` is the stride-2 stem level.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

# Config overrides that rebuild timm's layout; V1 ("a") models also drop the residual and eSE.
_TIMM_LAYOUT = {"fold_pool_into_stem": True, "pool_ceil_mode": True}
_TIMM_V1 = {**_TIMM_LAYOUT, "residual": False, "ese": False}
_TIMM_V2 = {**_TIMM_LAYOUT, "ese_last_block_only": True}


def _block_rules(stage: int) -> list[tuple[str, str]]:
    """Rules for timm ``stages.<stage>.blocks.<j>.*`` (our stage index is one higher)."""
    source, target = rf"stages\.{stage}\.blocks\.(\d+)\.", rf"stages.{stage + 1}.blocks.\g<1>."
    return [
        (source + r"conv_mid\.(\d+)\.conv\.(.+)", target + r"convs.\g<2>.conv.\g<3>"),
        (source + r"conv_mid\.(\d+)\.bn\.(.+)", target + r"convs.\g<2>.norm.\g<3>"),
        (source + r"conv_concat\.conv\.(.+)", target + r"aggregate.conv.\g<2>"),
        (source + r"conv_concat\.bn\.(.+)", target + r"aggregate.norm.\g<2>"),
        (source + r"attn\.fc\.(.+)", target + r"ese.fc.\g<2>"),
    ]


_TIMM_RULES: list[tuple[str, str]] = [
    (r"stem\.([01])\.conv\.(.+)", r"stages.0.\1.conv.\2"),
    (r"stem\.([01])\.bn\.(.+)", r"stages.0.\1.norm.\2"),
    (r"stem\.2\.conv\.(.+)", r"stages.1.downsample.conv.\1"),  # the conv that replaces the pool
    (r"stem\.2\.bn\.(.+)", r"stages.1.downsample.norm.\1"),
    *(rule for stage in range(4) for rule in _block_rules(stage)),
    (r"head\.fc\.(.+)", r"head.fc.\1"),
]

register_references(
    [
        Reference("timm", "vovnet39a", "vovnet39", _TIMM_RULES, overrides=_TIMM_V1),
        Reference("timm", "vovnet57a", "vovnet57", _TIMM_RULES, overrides=_TIMM_V1),
        Reference("timm", "ese_vovnet19b_slim", "vovnet19_slim", _TIMM_RULES, overrides=_TIMM_V2),
        Reference("timm", "ese_vovnet39b", "vovnet39", _TIMM_RULES, overrides=_TIMM_V2),
        Reference("timm", "ese_vovnet57b", "vovnet57", _TIMM_RULES, overrides=_TIMM_V2),
        Reference("timm", "ese_vovnet99b", "vovnet99", _TIMM_RULES, overrides=_TIMM_V2),
    ]
)
