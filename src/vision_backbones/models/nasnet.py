"""NASNet-A: cells found by neural architecture search, stacked into ImageNet networks.

Paper: "Learning Transferable Architectures for Scalable Image Recognition" (Zoph, Vasudevan,
Shlens, Le, CVPR 2018), https://arxiv.org/abs/1707.07012

The idea: search (an RNN controller trained with reinforcement learning, on CIFAR-10) not for a
whole network but for two *cells*, then transfer them to ImageNet by stacking more and wider
copies. A *normal cell* keeps the resolution; a *reduction cell* halves it (its ops on the cell
inputs have stride 2). Every cell takes two inputs, the outputs of the two cells before it
(``h_i``, ``h_{i-1}``), and is made of B = 5 *blocks*: each block picks two hidden states (a cell
input or an earlier block's output), applies one op of the search space to each (separable
3x3/5x5/7x7, 3x3 average/max pool, identity) and adds the two results. The cell's output
concatenates the hidden states listed in its table. The searched structure of NASNet-A is data,
``NASNET_A_NORMAL`` and ``NASNET_A_REDUCTION`` below (paper Fig. 4, TF-slim ``nasnet_utils.py``);
``Cell`` builds whatever table it is given.

Details of the reference implementation (TF-slim), kept here:
- a separable op ("sep 5x5") is ``ReLU -> SeparableConv2d -> BN`` applied twice, the stride on the
  first; every op outputs the cell's ``filters`` channels;
- before the blocks, ``h_i`` goes through ``ReLU -> 1x1 conv -> BN``; ``h_{i-1}`` is matched to it:
  a *factorized reduction* (ReLU, two 1x1/2 convs on pixel grids offset by one pixel, each giving
  half the channels, concatenated, BN) when it has twice the resolution, ``ReLU -> 1x1 conv -> BN``
  when only the width differs;
- the ImageNet stem is an unpadded 3x3/2 conv + BN (no ReLU: every cell starts with one), then two
  reduction cells at 1/4 and 1/2 of the cell width; the first has no earlier cell and takes the
  stem conv's output, untouched, as its ``h_{i-1}``;
- then ``3 x N`` normal cells (``depths = (N, N, N)``) with a reduction cell after each third,
  doubling the width. "N @ P" names a model by N and its penultimate width P = 24 x the cell width
  (6 concatenated states, 4x widening). NASNet-A Large (6 @ 4032) and Mobile (4 @ 1056) differ only
  in config;
- in Large (TF ``skip_reduction_layer_input``) the cell after a reduction cell takes as ``h_{i-1}``
  the reduction cell's own ``h_{i-1}``, skipping the reduction cell's input;
- ScheduledDropPath: each op's output is dropped with a probability growing linearly over the cells
  (``drop_path_rate``, ``layers.drop_path_rates``: 0 at the first cell; the paper also ramps it up over
  training time, which is the training loop's job).
The auxiliary classifier is not built.

Levels: ``stages[0]`` the stem conv (stride 2, unpadded: 224 -> 111), ``stages[1]`` the first stem
reduction cell (stride 4), ``stages[2]`` the second stem reduction cell and N normal cells (stride
8), ``stages[3]`` and ``stages[4]`` a reduction cell and N normal cells each (strides 16, 32). A
level is its last cell's output (before the ReLU the next cell starts with); the last stage ends with
the network's final ReLU. Because cells read two inputs, each stage takes and returns the pair
``(output, previous output)``; ``NASNet`` overrides the base loop's ``_begin`` / ``_level`` hooks so
that loop (checkpointing included) carries the pair. There is no ``output_stride``: the stem conv is
unpadded and cells downsample in parallel branches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers import ConvNormAct, DropPath, SeparableConv2d, drop_path_rates
from vision_backbones.layers.conv import LayerFactory
from vision_backbones.registry import register_family
from vision_backbones.validate import check_int, check_ints, check_rate

# ---------------------------------------------------------------------------------------------
# The searched cells, as data.


class Branch(NamedTuple):
    """One op of a block and the hidden state it reads."""

    op: str  # one of OPS
    input: int  # CURRENT, PREVIOUS or block_output(k)


class CellSpec(NamedTuple):
    """A cell: its blocks (two branches each, summed), the states it concatenates, its kind."""

    blocks: tuple[tuple[Branch, Branch], ...]
    concat: tuple[int, ...]
    reduction: bool  # ops reading the cell inputs have stride 2


# Hidden states of a cell: its two inputs (after the 1x1 / factorized adjustment), then one per block.
CURRENT, PREVIOUS = 0, 1  # h_i (the previous cell's output) and h_{i-1} (the one before)


def block_output(k: int) -> int:
    """Hidden-state index of block ``k``'s output."""
    return 2 + k


SEPARABLE_KERNELS = {"sep_3x3": 3, "sep_5x5": 5, "sep_7x7": 7}
OPS = (*SEPARABLE_KERNELS, "avg_3x3", "max_3x3", "identity")

NASNET_A_NORMAL = CellSpec(
    blocks=(
        (Branch("sep_5x5", CURRENT), Branch("sep_3x3", PREVIOUS)),
        (Branch("sep_5x5", PREVIOUS), Branch("sep_3x3", PREVIOUS)),
        (Branch("avg_3x3", CURRENT), Branch("identity", PREVIOUS)),
        (Branch("avg_3x3", PREVIOUS), Branch("avg_3x3", PREVIOUS)),
        (Branch("sep_3x3", CURRENT), Branch("identity", CURRENT)),
    ),
    concat=(PREVIOUS, *(block_output(k) for k in range(5))),
    reduction=False,
)

NASNET_A_REDUCTION = CellSpec(
    blocks=(
        (Branch("sep_5x5", CURRENT), Branch("sep_7x7", PREVIOUS)),
        (Branch("max_3x3", CURRENT), Branch("sep_7x7", PREVIOUS)),
        (Branch("avg_3x3", CURRENT), Branch("sep_5x5", PREVIOUS)),
        (Branch("identity", block_output(1)), Branch("avg_3x3", block_output(0))),
        (Branch("sep_3x3", block_output(0)), Branch("max_3x3", CURRENT)),
    ),
    concat=tuple(block_output(k) for k in (1, 2, 3, 4)),
    reduction=True,
)


def _check_cell(name: str, spec: CellSpec, *, reduction: bool) -> None:
    if not isinstance(spec, CellSpec) or not spec.blocks or not spec.concat:
        raise ValueError(f"{name} must be a CellSpec with at least one block and one concatenated state, got {spec!r}")
    if spec.reduction != reduction:
        raise ValueError(f"{name} must have reduction={reduction}, got {spec.reduction}")
    for k, pair in enumerate(spec.blocks):
        if len(pair) != 2:
            raise ValueError(f"{name} block {k} must have 2 branches, got {pair!r}")
        for branch in pair:
            if branch.op not in OPS:
                raise ValueError(f"{name} block {k}: unknown op {branch.op!r}; expected one of {', '.join(OPS)}")
            if not 0 <= branch.input < block_output(k):
                raise ValueError(
                    f"{name} block {k} reads state {branch.input}; "
                    f"expected 0..{block_output(k) - 1} (the inputs or earlier blocks)"
                )
            if reduction and branch.input < 2 and branch.op == "identity":
                raise ValueError(f"{name} block {k}: identity on a cell input cannot reduce; expected a strided op")
    num_states = block_output(len(spec.blocks))
    for index in spec.concat:
        if not 0 <= index < num_states:
            raise ValueError(f"{name} concatenates state {index}; expected 0..{num_states - 1}")
        if reduction and index < 2:
            raise ValueError(
                f"{name} concatenates cell input {index}, which is not reduced; expected block outputs only"
            )


# ---------------------------------------------------------------------------------------------
# Ops and cells.


def _same_padding(size: int, kernel_size: int, stride: int) -> int:
    return max((size + stride - 1) // stride * stride - stride + kernel_size - size, 0)


class SamePad(nn.Module):
    """TensorFlow "SAME" padding for a strided window: ``ceil(size / stride)`` outputs, the odd
    padded pixel at the bottom/right (so even sizes are padded asymmetrically)."""

    def __init__(self, kernel_size: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        pad_h = _same_padding(x.shape[-2], self.kernel_size, self.stride)
        pad_w = _same_padding(x.shape[-1], self.kernel_size, self.stride)
        return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=self.value)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, value={self.value}"


def separable_op(
    in_channels: int, out_channels: int, kernel_size: int, *, stride: int, same_padding: bool, norm_layer: LayerFactory
) -> nn.Sequential:
    """The searched "sep kxk" op: ``ReLU -> SeparableConv2d -> BN`` twice, the stride on the first."""
    layers: dict[str, nn.Module] = {"act1": nn.ReLU()}  # not in place: the input state is read again
    padding = None
    if same_padding and stride > 1:
        layers["pad1"] = SamePad(kernel_size, stride)
        padding = 0
    layers["conv1"] = SeparableConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    layers["norm1"] = norm_layer(out_channels)
    layers["act2"] = nn.ReLU(inplace=True)
    layers["conv2"] = SeparableConv2d(out_channels, out_channels, kernel_size)
    layers["norm2"] = norm_layer(out_channels)
    return nn.Sequential(OrderedDict(layers))


def pool_op(kind: str, *, stride: int, same_padding: bool) -> nn.Module:
    """3x3 max or average pool; padding never counts in the average, except in a strided pool with
    ``same_padding``, which counts its explicit zeros as timm's port does (TF leaves them out)."""
    if same_padding and stride > 1:
        pad = SamePad(3, stride, value=float("-inf") if kind == "max" else 0.0)
        pool: nn.Module = nn.MaxPool2d(3, stride) if kind == "max" else nn.AvgPool2d(3, stride)
        return nn.Sequential(OrderedDict(pad=pad, pool=pool))
    if kind == "max":
        return nn.MaxPool2d(3, stride, padding=1)
    return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)


def make_op(
    op: str, in_channels: int, out_channels: int, *, stride: int, same_padding: bool, norm_layer: LayerFactory
) -> nn.Module:
    """The module of one searched op, from ``in_channels`` to ``out_channels`` (the cell's filters)."""
    if op in SEPARABLE_KERNELS:
        kernel = SEPARABLE_KERNELS[op]
        return separable_op(
            in_channels, out_channels, kernel, stride=stride, same_padding=same_padding, norm_layer=norm_layer
        )
    if in_channels != out_channels:
        raise ValueError(
            f"op {op!r} keeps the width but reads {in_channels} channels; expected the cell's {out_channels} filters"
        )
    if op == "identity":
        if stride != 1:
            raise ValueError("an identity op cannot have stride 2")
        return nn.Identity()
    return pool_op("max" if op == "max_3x3" else "avg", stride=stride, same_padding=same_padding)


def relu_conv_norm(in_channels: int, out_channels: int, *, norm_layer: LayerFactory) -> nn.Sequential:
    """``ReLU -> 1x1 conv -> BN``: how a cell adjusts an input to its width."""
    conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    return nn.Sequential(OrderedDict(act=nn.ReLU(), conv=conv, norm=norm_layer(out_channels)))


class FactorizedReduction(nn.Module):
    """Halve the resolution of ``h_{i-1}`` without dropping pixels: ReLU, then two 1x1/2 convs, one
    on the even pixel grid and one on the grid shifted by one pixel (zero past the edge), each with
    half the output channels, concatenated, BN."""

    def __init__(self, in_channels: int, out_channels: int, *, norm_layer: LayerFactory) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"factorized reduction needs an even number of output channels, got {out_channels}")
        self.act = nn.ReLU()
        # A list, not two attributes: neither conv alone is followed by the (concatenated) norm.
        self.paths = nn.ModuleList(nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False) for _ in range(2))
        self.norm = norm_layer(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(x)
        shifted = F.pad(x[:, :, 1:, 1:], [0, 1, 0, 1])  # pixel (i + 1, j + 1) at (i, j)
        out = torch.cat([self.paths[0](x), self.paths[1](shifted)], dim=1)  # (B, C_out, ceil(H/2), ceil(W/2))
        return self.norm(out)


class Block(nn.Module):
    """One block of a cell: ``left(states[left_input]) + right(states[right_input])``."""

    def __init__(
        self,
        left: nn.Module,
        right: nn.Module,
        *,
        left_input: int,
        right_input: int,
        left_drop: nn.Module,
        right_drop: nn.Module,
    ) -> None:
        super().__init__()
        self.left = left
        self.right = right
        self.left_input = left_input
        self.right_input = right_input
        self.left_drop = left_drop
        self.right_drop = right_drop

    def forward(self, states: list[Tensor]) -> Tensor:
        left = self.left_drop(self.left(states[self.left_input]))
        return left + self.right_drop(self.right(states[self.right_input]))


class Cell(nn.Module):
    """A normal or reduction cell built from its table: adjust both inputs to ``filters`` channels,
    run the blocks, concatenate the listed states.

    ``previous_channels=None``: the cell has no earlier input (the first stem cell) and uses its own
    input, unadjusted, as ``h_{i-1}``. ``previous_reduced``: ``h_{i-1}`` has twice the resolution
    of ``h_i``.
    """

    def __init__(
        self,
        spec: CellSpec,
        filters: int,
        *,
        current_channels: int,
        previous_channels: int | None,
        previous_reduced: bool,
        same_padding: bool,
        norm_layer: LayerFactory,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.reduction = spec.reduction
        self.adjust_current = relu_conv_norm(current_channels, filters, norm_layer=norm_layer)
        self.adjust_previous: nn.Module = nn.Identity()
        if previous_channels is None:
            previous_channels = current_channels
        elif previous_reduced:
            self.adjust_previous = FactorizedReduction(previous_channels, filters, norm_layer=norm_layer)
            previous_channels = filters
        elif previous_channels != filters:
            self.adjust_previous = relu_conv_norm(previous_channels, filters, norm_layer=norm_layer)
            previous_channels = filters

        channels = [filters, previous_channels]  # of each hidden state
        blocks = []
        for left, right in spec.blocks:
            ops, drops = [], []
            for branch in (left, right):
                stride = 2 if spec.reduction and branch.input < 2 else 1
                op = make_op(
                    branch.op,
                    channels[branch.input],
                    filters,
                    stride=stride,
                    same_padding=same_padding,
                    norm_layer=norm_layer,
                )
                ops.append(op)
                drops.append(DropPath(drop_path) if drop_path > 0.0 and branch.op != "identity" else nn.Identity())
            blocks.append(
                Block(
                    ops[0],
                    ops[1],
                    left_input=left.input,
                    right_input=right.input,
                    left_drop=drops[0],
                    right_drop=drops[1],
                )
            )
            channels.append(filters)
        self.blocks = nn.ModuleList(blocks)
        self.concat = list(spec.concat)
        self.out_channels = sum(channels[i] for i in spec.concat)

    def forward(self, x: Tensor, previous: Tensor) -> Tensor:
        states = [self.adjust_current(x), self.adjust_previous(previous)]
        for block in self.blocks:
            states.append(block(states))
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, out_channels, H / stride, W / stride)


# ---------------------------------------------------------------------------------------------
# Stages: each takes and returns (output, previous output), since cells read both.


class StemConv(nn.Module):
    """Level 0: the unpadded 3x3/2 conv + BN, no activation (every cell starts with its own ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, *, norm_layer: LayerFactory) -> None:
        super().__init__()
        self.conv = ConvNormAct(
            in_channels, out_channels, 3, stride=2, padding=0, norm_layer=norm_layer, act_layer=None
        )

    def forward(self, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x = self.conv(state[0])  # (B, C, (H - 1) // 2, (W - 1) // 2)
        return x, x  # the first cell has no earlier input: it takes this map as both


class CellStage(nn.Module):
    """Cells run in order, each on ``(output of the last cell, output of the one before)``.

    ``passes_previous[i]``: the cell after cell ``i`` takes cell ``i``'s own ``h_{i-1}`` rather than
    cell ``i``'s input (NASNet-A Large after its reduction cells).
    """

    def __init__(self, cells: Sequence[Cell], *, passes_previous: Sequence[bool], final_act: bool) -> None:
        super().__init__()
        if len(cells) != len(passes_previous):
            raise ValueError(
                f"got {len(cells)} cells and {len(passes_previous)} passes_previous flags; expected one per cell"
            )
        self.cells = nn.ModuleList(cells)
        self.passes_previous = list(passes_previous)
        self.act: nn.Module = nn.ReLU() if final_act else nn.Identity()

    def forward(self, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, previous = state
        for index, cell in enumerate(self.cells):
            out = cell(x, previous)
            if not self.passes_previous[index]:
                previous = x
            x = out
        return self.act(x), previous


# ---------------------------------------------------------------------------------------------
# The network.


@dataclass(frozen=True)
class NASNetConfig:
    """Architecture of one NASNet variant ("N @ P").

    Attributes:
        stem_channels: output channels of the 3x3/2 stem conv (TF: 32 x ``stem_multiplier``).
        penultimate_channels: P, the width of the last cells; the cell width at stride 8 is
            P / (4 x the normal cell's concatenated states), halved and quartered in the stem cells.
        depths: normal cells after the stem cells and after each of the two reduction cells (N each
            in the paper).
        image_size: the paper's input resolution (331 Large, 224 Mobile); any size from
            ``min_input_size`` works.
        normal_cell, reduction_cell: the searched cell tables.
        skip_reduction_input: the cell after a (non-stem) reduction cell takes the reduction cell's
            own ``h_{i-1}`` (TF ``skip_reduction_layer_input``: Large yes, Mobile no).
        drop_path_rate: ScheduledDropPath probability at the last cell (linear in the cell index).
        drop_rate: dropout before the classifier (paper: 0.5).
        same_padding: TF "SAME" padding for strided separable convs and pools (asymmetric on even
            sizes), as timm's port of the TF weights; strided average pools then count the padding.
        bn_eps, bn_momentum: batch norm settings (TF-slim and timm: 1e-3; timm momentum 0.1).
    """

    stem_channels: int = 32
    penultimate_channels: int = 1056
    depths: tuple[int, int, int] = (4, 4, 4)
    image_size: int = 224
    normal_cell: CellSpec = NASNET_A_NORMAL
    reduction_cell: CellSpec = NASNET_A_REDUCTION
    skip_reduction_input: bool = False
    drop_path_rate: float = 0.0
    drop_rate: float = 0.5
    same_padding: bool = False
    bn_eps: float = 1e-3
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("penultimate_channels", self.penultimate_channels, min=1)
        check_int("image_size", self.image_size, min=1)
        check_ints("depths", self.depths, min=1, length=3)  # normal cells per width
        _check_cell("normal_cell", self.normal_cell, reduction=False)
        _check_cell("reduction_cell", self.reduction_cell, reduction=True)
        widening = 4 * len(self.normal_cell.concat)
        if self.penultimate_channels % widening:
            raise ValueError(
                f"penultimate_channels must be a multiple of {widening} (4 x {len(self.normal_cell.concat)} "
                f"concatenated states), got {self.penultimate_channels}"
            )
        # the stem cells run at 1/4 and 1/2 of the cell width, and a factorized reduction halves that again
        if self.penultimate_channels % (4 * widening):
            raise ValueError(
                f"penultimate_channels must be a multiple of {4 * widening} (a cell width divisible by 4: the stem "
                f"cells run at a quarter and a half of it, and a factorized reduction splits its output in two), "
                f"got {self.penultimate_channels}"
            )
        check_rate("drop_path_rate", self.drop_path_rate)
        check_rate("drop_rate", self.drop_rate)
        if self.bn_eps <= 0 or not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_eps must be > 0 and bn_momentum in [0, 1], got {self.bn_eps} and {self.bn_momentum}")

    @property
    def cell_channels(self) -> int:
        """Width of the normal cells at stride 8 (168 Large, 44 Mobile)."""
        return self.penultimate_channels // (4 * len(self.normal_cell.concat))


class CellPlan(NamedTuple):
    """One cell to build: its table, its width, whether the next cell skips its input (see CellStage)."""

    spec: CellSpec
    filters: int
    passes_previous: bool


def cell_plan(config: NASNetConfig) -> list[list[CellPlan]]:
    """The cells of stages 1..4: two stem reduction cells, then ``depths[i]`` normal cells per width,
    with a reduction cell before each doubling."""
    f, (n8, n16, n32) = config.cell_channels, config.depths
    normal, reduction, skip = config.normal_cell, config.reduction_cell, config.skip_reduction_input
    return [
        [CellPlan(reduction, f // 4, False)],
        [CellPlan(reduction, f // 2, False)] + [CellPlan(normal, f, False)] * n8,
        [CellPlan(reduction, 2 * f, skip)] + [CellPlan(normal, 2 * f, False)] * n16,
        [CellPlan(reduction, 4 * f, skip)] + [CellPlan(normal, 4 * f, False)] * n32,
    ]


def _init_weights(model: nn.Module) -> None:
    """He normal, fan in (TF-slim's default) for convs that read a ReLU output; unit gain (LeCun) for
    the pointwise half of each separable conv (it reads the linear depthwise output), the stem conv
    (the image) and the 1x1 / factorized adjustments of the cell inputs. The last is a choice: every
    block adds two branches, and halving the adjusted inputs' second moment offsets that, so fresh
    eval-mode activations stay near unit scale through the cells (He there grows them ~25x)."""
    linear: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, SeparableConv2d):
            linear.append(cast(nn.Conv2d, module.pointwise))
        elif isinstance(module, StemConv):
            linear.append(module.conv)
        elif isinstance(module, Cell):
            linear += [module.adjust_current, module.adjust_previous]
    linear_convs = {id(conv) for part in linear for conv in part.modules() if isinstance(conv, nn.Conv2d)}
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            gain: Literal["linear", "relu"] = "linear" if id(module) in linear_convs else "relu"
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity=gain)


class NASNet(Backbone):
    """Stem conv (stride 2), stem reduction cells (strides 4, 8), cell stacks (strides 8, 16, 32)."""

    def __init__(self, config: NASNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        norm_layer = partial(nn.BatchNorm2d, eps=config.bn_eps, momentum=config.bn_momentum)
        plan = cell_plan(config)
        rates = iter(drop_path_rates(config.drop_path_rate, sum(len(stage) for stage in plan)))

        stages: list[nn.Module] = [StemConv(in_channels, config.stem_channels, norm_layer=norm_layer)]
        # (channels, reduced so far) of the last cell's output and of the one before; None before the first cell.
        current: tuple[int, int] = (config.stem_channels, 0)
        previous: tuple[int, int] | None = None
        for stage_index, stage_plan in enumerate(plan):
            cells = []
            for spec, filters, passes_previous in stage_plan:
                cell = Cell(
                    spec,
                    filters,
                    current_channels=current[0],
                    previous_channels=None if previous is None else previous[0],
                    previous_reduced=previous is not None and previous[1] < current[1],
                    same_padding=config.same_padding,
                    norm_layer=norm_layer,
                    drop_path=next(rates),
                )
                output = (cell.out_channels, current[1] + int(spec.reduction))
                if not passes_previous:
                    previous = current
                current = output
                cells.append(cell)
            last = stage_index == len(plan) - 1
            stages.append(CellStage(cells, passes_previous=[c.passes_previous for c in stage_plan], final_act=last))

        head = None if num_classes is None else ClassifierHead(current[0], num_classes, dropout=config.drop_rate)
        # The unpadded stem conv gives (size - 1) // 2, every reduction after it rounds up: 32 px leave
        # one pixel at stride 32 (smaller inputs run, but the deep maps are all padding).
        super().__init__(nn.Identity(), stages, in_channels=in_channels, head=head, min_input_size=32)
        self.image_size = config.image_size
        _init_weights(self)

    # Cells read the two previous outputs, so the base loop carries the pair ``(output, previous output)``.
    def _begin(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return x, x

    def _level(self, state: tuple[Tensor, Tensor]) -> Tensor:  # type: ignore[override]
        return state[0]


VARIANTS: dict[str, NASNetConfig] = {
    # NASNet-A (6 @ 4032), 331 x 331: stem 3 x 32 filters, cell width 168.
    "nasnet_a_large": NASNetConfig(
        stem_channels=96, penultimate_channels=4032, depths=(6, 6, 6), image_size=331, skip_reduction_input=True
    ),
    # NASNet-A (4 @ 1056), 224 x 224: stem 32 filters, cell width 44.
    "nasnet_a_mobile": NASNetConfig(
        stem_channels=32, penultimate_channels=1056, depths=(4, 4, 4), image_size=224, skip_reduction_input=False
    ),
}


def _channel_divisor(config: NASNetConfig) -> int:
    """Multiples of ``4 x 4 x`` the normal cell's concatenated states (NASNet-A: 96), so the cell width
    ``penultimate_channels / 24`` stays divisible by 4 (see ``NASNetConfig``)."""
    return 16 * len(config.normal_cell.concat)


# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``): "N @ P", the normal
# cells per width and the penultimate width, from which every cell's width follows. The stem is the
# paper's fixed 32 x stem multiplier.
DESIGN = DesignFields(channels=("penultimate_channels",), depths=("depths",), channel_divisor=_channel_divisor)

# timm's ``nasnetalarge`` pretrained_cfg: 331 px, crop 0.911, bicubic, mean = std = 0.5; Mobile: TF-slim's
# inception preprocessing at its 224 px (crop 0.875).
PREPROCESSING = {
    "nasnet_a_large": Preprocessing(
        INCEPTION_MEAN, INCEPTION_STD, input_size=331, crop_pct=0.911, interpolation="bicubic"
    ),
    "nasnet_a_mobile": Preprocessing(
        INCEPTION_MEAN, INCEPTION_STD, input_size=224, crop_pct=0.875, interpolation="bicubic"
    ),
}

register_family("nasnet", VARIANTS, NASNet, design=DESIGN, preprocessing=PREPROCESSING)
