"""A benchmark family for search: a small MBConv network whose every searchable layer picks one op.

Not a published network: this is the space that ``vision_backbones.search`` trains exhaustively into a
NAS-Bench-style table (``benchmarks/nasbench_mb/``), in the manner of NAS-Bench-201 (Dong & Yang 2020,
https://arxiv.org/abs/2001.00326), whose cells choose one op per edge from a fixed list that includes
``skip``. Here the ops are MobileNetV2 / MnasNet inverted residuals (Sandler et al. 2018; Tan et al.
2019), so a member differs from another in depthwise kernel (3 or 5), expansion (1 or 4: the hidden
width) and depth (``skip`` removes a layer), the decisions MnasNet and EfficientNet search.

How each idea shows in the code:

- ``OPS``: the op vocabulary; ``"skip"`` is the identity, ``"k5_e4"`` an inverted residual with a 5x5
  depthwise kernel and 4x expansion (input and output widths equal, so every op keeps the shape and
  carries its own residual).
- ``NASBenchMBConfig.ops``: one op per searchable layer, stage after stage (``layers_per_stage``).
- Stage ``i > 0`` opens with a fixed stride-2 inverted residual (3x3, expansion 3) that changes the
  width: a reduction cannot be skipped, as NAS-Bench-201's residual reduction blocks are fixed.
- A ``skip`` layer is kept as ``nn.Identity`` at its index, so the parameter names of a member are the
  names of the same layers in a weight-sharing supernet (``stages.0.layers.1...``): a path's weights
  load into ``create_model`` without renaming.

Levels: stride 1 (stem + stage 0, the stem has stride 1: the space is meant for small images), 2, 4, ...
The 1x1 ``head_conv`` to ``head_channels`` is part of the last level.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, init_weights
from vision_backbones.layers.drop_path import drop_path_rates
from vision_backbones.layers.inverted_residual import InvertedResidual
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_float, check_int, check_ints

# (kernel, expansion) of each op; "skip" has none.
OP_SHAPES: dict[str, tuple[int, int]] = {"k3_e1": (3, 1), "k3_e4": (3, 4), "k5_e1": (5, 1), "k5_e4": (5, 4)}
OPS: tuple[str, ...] = ("skip", *OP_SHAPES)
REDUCTION_EXPANSION = 3


def make_op(op: str, channels: int, drop_path: float = 0.0) -> nn.Module:
    """The module of ``op`` at ``channels`` wide (shape kept: stride 1, same channels)."""
    if op == "skip":
        return nn.Identity()
    kernel, expansion = OP_SHAPES[op]
    expanded = channels * expansion
    return InvertedResidual(channels, channels, expanded_channels=expanded, kernel_size=kernel, drop_path=drop_path)


class OpStage(nn.Module):
    """An optional reduction block (stride 2, new width) and then the stage's searchable layers."""

    def __init__(self, reduction: nn.Module, layers: list[nn.Module]) -> None:
        super().__init__()
        self.reduction = reduction
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduction(x)
        for layer in self.layers:
            x = layer(x)
        return x


@dataclass(frozen=True)
class NASBenchMBConfig:
    """Architecture of one member.

    Attributes:
        ops: one of ``OPS`` per searchable layer, stage after stage.
        layers_per_stage: searchable layers in each stage (their sum is ``len(ops)``; 0 for a stage that is
            only its reduction).
        widths: channels of each stage (stage 0 keeps the stem's resolution; every later one halves it).
        stem_channels: channels of the 3x3 stride-1 stem conv.
        head_channels: channels of the final 1x1 conv before pooling.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the last searchable layer (linear from 0 over the layers).
    """

    ops: tuple[str, ...] = ("k3_e4",) * 4
    layers_per_stage: tuple[int, ...] = (2, 2, 0)
    widths: tuple[int, ...] = (16, 32, 64)
    stem_channels: int = 16
    head_channels: int = 128
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        widths = check_ints("widths", self.widths, min=1)
        per_stage = check_ints("layers_per_stage", self.layers_per_stage, min=0, length=len(widths), per="stage")
        if isinstance(self.ops, (str, bytes)) or len(self.ops) != sum(per_stage):
            raise ValueError(f"ops {self.ops!r}: expected {sum(per_stage)} ops, one per searchable layer")
        for index, op in enumerate(self.ops):
            check_choice(f"ops[{index}]", op, OPS)
        object.__setattr__(self, "ops", tuple(self.ops))
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("head_channels", self.head_channels, min=1)
        check_float("drop_rate", self.drop_rate, min=0, max=1, max_open=True)
        check_float("drop_path_rate", self.drop_path_rate, min=0, max=1, max_open=True)


class NASBenchMB(Backbone):
    """Stem, one stage per width (a fixed reduction, then searchable layers), 1x1 head conv, classifier."""

    def __init__(self, config: NASBenchMBConfig, *, in_channels: int, num_classes: int | None) -> None:
        stem = ConvNormAct(in_channels, config.stem_channels, 3)
        ops, rates = iter(config.ops), iter(drop_path_rates(config.drop_path_rate, len(config.ops)))
        stages, channels = [], config.stem_channels
        for index, (width, count) in enumerate(zip(config.widths, config.layers_per_stage)):
            reduction: nn.Module = nn.Identity()
            if index > 0 or width != channels:
                stride = 2 if index > 0 else 1
                expanded = channels * REDUCTION_EXPANSION
                reduction = InvertedResidual(channels, width, expanded_channels=expanded, stride=stride)
            stages.append(OpStage(reduction, [make_op(next(ops), width, next(rates)) for _ in range(count)]))
            channels = width
        head_conv = ConvNormAct(channels, config.head_channels, 1)
        head = ClassifierHead(config.head_channels, num_classes, dropout=config.drop_rate) if num_classes else None
        super().__init__(stem, stages, in_channels=in_channels, head=head, head_conv=head_conv)
        init_weights(self)


VARIANTS: dict[str, NASBenchMBConfig] = {
    # Every searchable layer a 3x3 inverted residual with expansion 4; ``ops=`` overrides give any member.
    "nasbench_mb": NASBenchMBConfig(),
}

# Widths scale like any family's; depth and kernels are chosen per layer through ``ops``.
DESIGN = DesignFields(
    channels=("stem_channels", "widths", "head_channels"),
    fixed_because="its depth and kernels are chosen per layer by the ops (skip removes a layer)",
)

# A benchmark space, not a released model: ImageNet statistics at 224 px (crop 0.875, bilinear).
PREPROCESSING = Preprocessing()

register_family("nasbench_mb", VARIANTS, NASBenchMB, design=DESIGN, preprocessing=PREPROCESSING)
