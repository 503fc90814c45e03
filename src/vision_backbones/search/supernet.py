"""The single-path supernet: every choice of an MBConv space in one network, one path run at a time.

Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling"
(https://arxiv.org/abs/1904.00420): one *supernet* holds every choice of every layer; a path (one
member of the space) activates one operation per layer and a depth per stage. Here a path is the
member's choice indices, so the supernet runs exactly the members of a registered ``MBConvSpace``
(``"mnasnet_oneshot"``) and ``subnetwork`` copies a path's weights into
``create_model(space.base, **space.architecture(indices))``: what the search ranked is what
``create_model`` rebuilds.

A supernet covers an ``MBConvSpace`` over a MnasNet model whose rows have one width each (a single
filter factor): the kernel, expansion and squeeze-excite choices of a layer are blocks side by side,
depth is how many of a stage's layers run. ``check_coverage`` says which decision breaks that.

Skip-connection collapse. DARTS relaxes each edge to a softmax over operations and lets gradient
descent pick; parameter-free skips win that race early, so searched cells end all-skip (NAS-Bench-201:
DARTS 54.30 %). Here paths are sampled uniformly, so every operation and depth gets the same share of
updates whatever its early accuracy. "Skip" exists only as a shallower depth, and it is capped: a
stage keeps at least its smallest depth (>= 1 layer). ``skip_share`` reports the share of skippable
layers a path leaves out next to ``uniform_skip_share``, what a uniform path leaves out on average,
so a search that drifts to the shallowest networks shows it.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from vision_backbones.head import ClassifierHead
from vision_backbones.layers import init_weights
from vision_backbones.layers.conv import ConvNormAct, make_divisible
from vision_backbones.layers.inverted_residual import ACTIVATIONS, InvertedResidual, MBConvRow, expand_rows
from vision_backbones.registry import get_entry
from vision_backbones.search.latency import network_blocks
from vision_backbones.search.spaces import MBConvSpace, SearchSpace

ROW_CHOICES = ("kernel_size", "expand_ratio", "se_ratio")  # one operation of a layer


class StageChoice(NamedTuple):
    """One stage of a path: the operation all its layers use, and how many layers run."""

    kernel_size: int
    expand_ratio: float
    se_ratio: float
    depth: int


def check_coverage(space: SearchSpace) -> MBConvSpace:
    """``space`` if a supernet covers it exactly; otherwise a one-line error naming what does not fit."""
    if not isinstance(space, MBConvSpace):
        raise ValueError(
            f"space {space.name!r} is a {type(space).__name__}; a supernet covers an MBConvSpace "
            "(per row kernel, expansion, squeeze-excite and repeats), e.g. 'mnasnet_oneshot'"
        )
    family = get_entry(space.base).family
    if family != "mnasnet":
        raise ValueError(
            f"space {space.name!r} is over {space.base!r}, a {family!r} model; expected a 'mnasnet' variant"
        )
    if len(space.filter_factors) > 1:
        raise ValueError(
            f"space {space.name!r}: decision rows[0].filter_factor has {len(space.filter_factors)} choices; a supernet "
            "shares one width per row, so expected a single filter factor"
        )
    return space


def _decision_index(space: MBConvSpace) -> dict[str, int]:
    return {d.name: i for i, d in enumerate(space.decisions)}


def stage_choices(space: MBConvSpace, indices: Sequence[int]) -> tuple[StageChoice, ...]:
    """The operation and depth of each stage of the member ``indices``."""
    rows = space.architecture(indices)["rows"]
    return tuple(StageChoice(row["kernel_size"], row["expand_ratio"], row["se_ratio"], row["repeats"]) for row in rows)


def depth_choices(space: MBConvSpace, stage: int) -> tuple[int, ...]:
    """The depths stage ``stage`` may take (sorted)."""
    return space.decisions[_decision_index(space)[f"rows[{stage}].repeats"]].choices


def fair_paths(space: MBConvSpace, rng: random.Random) -> list[tuple[int, ...]]:
    """One path per operation such that every stage runs every operation exactly once (FairNAS's
    strict fairness); each path's depths are drawn uniformly."""
    position = _decision_index(space)
    sizes = [len(space.decisions[position[f"rows[0].{name}"]].choices) for name in ROW_CHOICES]
    operations = list(itertools.product(*(range(size) for size in sizes)))
    orders = [rng.sample(operations, len(operations)) for _ in space.rows]
    paths = []
    for k in range(len(operations)):
        chosen = [0] * len(space.decisions)
        for stage in range(len(space.rows)):
            for name, choice in zip(ROW_CHOICES, orders[stage][k]):
                chosen[position[f"rows[{stage}].{name}"]] = choice
            chosen[position[f"rows[{stage}].repeats"]] = rng.randrange(len(depth_choices(space, stage)))
        paths.append(tuple(chosen))
    return paths


def skip_share(space: MBConvSpace, indices: Sequence[int]) -> float:
    """Share of the skippable layers (beyond each stage's smallest depth) that the member leaves out."""
    depths = [depth_choices(space, stage) for stage in range(len(space.rows))]
    skippable = sum(d[-1] - d[0] for d in depths)
    skipped = sum(d[-1] - choice.depth for d, choice in zip(depths, stage_choices(space, indices)))
    return skipped / skippable if skippable else 0.0


def uniform_skip_share(space: MBConvSpace) -> float:
    """``skip_share`` of a uniformly sampled path, on average (what no drift looks like)."""
    depths = [depth_choices(space, stage) for stage in range(len(space.rows))]
    skippable = sum(d[-1] - d[0] for d in depths)
    expected = sum(d[-1] - sum(d) / len(d) for d in depths)
    return expected / skippable if skippable else 0.0


def operation_key(kernel_size: int, expand_ratio: float, se_ratio: float) -> str:
    """A module name for one operation (no dots: ``k5_e6_se25`` is kernel 5, expansion 6, SE 0.25)."""
    return f"k{kernel_size}_e{expand_ratio:g}_se{round(100 * se_ratio)}".replace(".", "p")


class SharedKernelConv(nn.Conv2d):
    """A depthwise conv whose ``k x k`` kernel is the centre of the largest one (``active_kernel``)."""

    active_kernel: int

    def active_weight(self) -> Tensor:
        offset = (self.kernel_size[0] - self.active_kernel) // 2
        return self.weight[:, :, offset : offset + self.active_kernel, offset : offset + self.active_kernel]

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.active_weight(), self.bias, self.stride, self.active_kernel // 2, self.dilation, self.groups
        )


def _share_kernels(block: Any) -> None:
    """Replace an ``InvertedResidual``'s depthwise conv by a ``SharedKernelConv`` with the same weights."""
    conv = block.depthwise.conv
    shared = SharedKernelConv(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    shared.load_state_dict(conv.state_dict())
    shared.active_kernel = conv.kernel_size[0]
    block.depthwise.conv = shared


class Supernet(nn.Module):
    """Every (stage, layer, operation) block of ``space``; ``forward`` runs the path set by ``set_path``.

    ``share_kernels=True`` (default): the kernel sizes of one (layer, expansion, SE) share one block,
    whose depthwise ``k x k`` kernel is the centre of the largest (Single-Path NAS's "superkernel",
    Stamoulis et al., https://arxiv.org/abs/1904.02877). Measured on MNIST: with a block of its own per
    kernel the supernet stayed at chance loss after 3 epochs with as few as two kernels per layer,
    while a shared block trains like a stand-alone network. ``False`` is plain SPOS (a block per operation).
    """

    def __init__(
        self, space: SearchSpace, *, in_channels: int = 1, num_classes: int = 10, share_kernels: bool = True
    ) -> None:
        super().__init__()
        self.space = check_coverage(space)
        self.share_kernels = share_kernels
        self.in_channels, self.num_classes = in_channels, num_classes
        first = tuple(0 for _ in self.space.decisions)
        # every member's fixed settings (width, stem, head, dropout) and rows' widths: those of any member
        config = dataclasses.replace(get_entry(self.space.base).config, **self.space.proxy)
        rows = [MBConvRow(**row) for row in self.space.architecture(first)["rows"]]
        width = config.width_multiplier
        stem_channels = make_divisible(config.stem_channels * width)
        self.stem = ConvNormAct(in_channels, stem_channels, 3, stride=2, act_layer=nn.ReLU)
        self.stages = nn.ModuleList()
        stage_in = stem_channels
        operations = list(itertools.product(self.space.kernels, self.space.expansions, self.space.se_ratios))
        for index, row in enumerate(rows):
            deepest = depth_choices(self.space, index)[-1]
            layers = [nn.ModuleDict() for _ in range(deepest)]
            for kernel, expansion, se_ratio in operations:
                key = self.block_key(kernel, expansion, se_ratio)
                if key in layers[0]:
                    continue  # one shared block for every kernel size
                chosen = row._replace(
                    kernel_size=max(self.space.kernels) if share_kernels else kernel,
                    expand_ratio=expansion,
                    se_ratio=se_ratio,
                    repeats=deepest,
                    expanded_channels=None,
                )
                for layer, spec in zip(layers, expand_rows([chosen], stem_channels=stage_in, width_multiplier=width)):
                    layer[key] = InvertedResidual(**spec._asdict())
                    if share_kernels:
                        _share_kernels(layer[key])
            self.stages.append(nn.ModuleList(layers))
            stage_in = make_divisible(row.out_channels * width)
        self.head_conv = ConvNormAct(stage_in, config.head_channels, 1, act_layer=ACTIVATIONS["relu"])
        self.head = ClassifierHead(config.head_channels, num_classes, dropout=config.drop_rate)
        init_weights(self)  # the initialisation create_model gives the stand-alone network
        self.path = stage_choices(self.space, first)

    def block_key(self, kernel_size: int, expand_ratio: float, se_ratio: float) -> str:
        kernel = max(self.space.kernels) if self.share_kernels else kernel_size
        return operation_key(kernel, expand_ratio, se_ratio)

    def set_path(self, indices: Sequence[int]) -> None:
        """Run the member ``indices`` of the space from now on."""
        self.path = stage_choices(self.space, indices)

    def path_blocks(self, path: Sequence[StageChoice] | None = None) -> list[nn.Module]:
        """The blocks ``path`` runs, in order: stem, each active layer's operation, head conv, head."""
        path = self.path if path is None else path
        blocks: list[nn.Module] = [self.stem]
        stages: Any = self.stages  # ModuleList of ModuleLists of ModuleDicts
        for layers, choice in zip(stages, path):
            key = self.block_key(choice.kernel_size, choice.expand_ratio, choice.se_ratio)
            for j in range(choice.depth):
                block = layers[j][key]
                if self.share_kernels:
                    block.depthwise.conv.active_kernel = choice.kernel_size
                blocks.append(block)
        return [*blocks, self.head_conv, self.head]

    def forward(self, x: Tensor) -> Tensor:
        for block in self.path_blocks():
            x = block(x)
        return x  # (B, num_classes)


def subnetwork(supernet: Supernet, indices: Sequence[int]) -> nn.Module:
    """``create_model(base, **space.architecture(indices))`` (the supernet's classes and channels) holding the
    supernet's weights for that path."""
    from vision_backbones.registry import create_model

    space = supernet.space
    model = create_model(
        space.base, num_classes=supernet.num_classes, in_channels=supernet.in_channels, **space.architecture(indices)
    )
    source, target = supernet.path_blocks(stage_choices(space, indices)), network_blocks(model)
    if len(source) != len(target):
        raise RuntimeError(f"sub-network has {len(target)} blocks, the supernet path {len(source)}")
    for mine, theirs in zip(source, target):
        state: dict[str, Any] = mine.state_dict()
        conv = getattr(getattr(mine, "depthwise", None), "conv", None)
        if isinstance(conv, SharedKernelConv):  # the centre of the shared kernel
            state["depthwise.conv.weight"] = conv.active_weight()
        theirs.load_state_dict(state, strict=True)
    return model
