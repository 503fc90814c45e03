"""timm ResNetV2 (``resnetv2_*``, batch-norm pre-activation) keys -> ours.

timm: ``stem.conv``, ``stages.<i>.blocks.<j>`` with ``norm<k>`` (a norm + activation module) before
``conv<k>`` and the projection ``downsample.conv``, the final ``norm`` and a 1x1-conv classifier
``head.fc``. Our ``stages.0`` is the stem conv, so timm ``stages.<i>`` is our ``stages.<i+1>``;
the final norm closes our last stage. timm's classifier is a 1x1 conv: its weight is flattened
into our linear's.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, StateDict, register_references

_NUM_STAGES = 4


def _stage_rules(stage: int) -> list[tuple[str, str]]:
    source, target = rf"stages\.{stage}\.blocks\.(\d+)\.", rf"stages.{stage + 1}.blocks.\g<1>."
    return [
        (source + r"norm(\d)\.(.+)", target + r"norm_act\g<2>.norm.\g<3>"),
        (source + r"conv(\d)\.weight", target + r"conv\g<2>.weight"),
        (source + r"downsample\.conv\.weight", target + r"shortcut.weight"),
    ]


RULES: list[tuple[str, str]] = [
    (r"stem\.conv\.weight", r"stages.0.conv.weight"),
    *(rule for stage in range(_NUM_STAGES) for rule in _stage_rules(stage)),
    (r"norm\.(.+)", rf"stages.{_NUM_STAGES}.norm.\1"),
    (r"head\.fc\.(weight|bias)", r"head.fc.\1"),
]


def _conv_head_to_linear(state_dict: StateDict) -> StateDict:
    """timm's (classes, C, 1, 1) classifier conv -> a (classes, C) linear weight."""
    return {key: value.flatten(1) if key == "head.fc.weight" else value for key, value in state_dict.items()}


register_references(
    [
        Reference("timm", f"resnetv2_{depth}", f"preact_resnet{depth}", RULES, transform=_conv_head_to_linear)
        for depth in (18, 34, 50, 101, 152)
    ]
)
