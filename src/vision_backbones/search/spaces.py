"""Search spaces as data: a registered base model plus categorical choices over fields of its config.

A space is a tuple of ``Decision``s (a name, a vocabulary and its choices); a *member* is one index
per decision, and ``space.architecture(indices)`` turns it into an override dict such that
``create_model(space.base, **architecture)`` builds exactly the evaluated network. The override dict is
JSON (``save_architecture`` / ``load_architecture``), so a found backbone leaves the search as a file.

The spaces:

- ``MBConvSpace`` (``"mnasnet"``): MnasNet's factorized hierarchical space (Tan et al. 2019,
  https://arxiv.org/abs/1807.11626, section 4.1): per row of the shared MBConv table a depthwise kernel,
  an expansion ratio, squeeze-and-excitation or not, a repeat change and a filter-size factor, so
  different stages may differ.
- ``"mnasnet_oneshot"``: the same ``MBConvSpace`` narrowed to what a single-path supernet covers
  (one width per row, one expansion, no SE), for ``--strategy oneshot``.
- ``StageSpace`` (``"resnet"``, ``"nasbench_resnet"``): depths and widths per stage of a non-mobile
  family (ResNet here; VoVNet or Darknet take the same two fields).
- ``ZophLeSpace`` (``"zoph_le"``): the whole-architecture space of Zoph & Le 2017
  (https://arxiv.org/abs/1611.01578): per layer filters, kernel height, kernel width, stride and a skip
  connection to each earlier layer, of variable depth (``with_depth`` for the controller's growing depth).

Every space is checked when it is defined: its extreme members (every first choice, every last
choice) and a few random ones are built on the meta device at the proxy image size, so a choice that
makes an invalid network fails at once, not hours into a search.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision_backbones.io import jsonable, lists_to_tuples, read_json, write_json
from vision_backbones.layers.inverted_residual import MBConvRow
from vision_backbones.models.mnasnet import B1_ROWS
from vision_backbones.models.zoph_le import ZophLeLayer
from vision_backbones.registry import build_on_meta, get_entry
from vision_backbones.validate import check_choice, check_int

Architecture = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """One categorical choice: ``name`` says where it acts, ``kind`` what it chooses.

    Decisions of one ``vocabulary`` (kind and number of choices) share a controller's embedding and
    softmax (ENAS shares them per decision type, too).
    """

    name: str
    kind: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f"decision {self.name!r} has no choices; expected at least one")

    @property
    def vocabulary(self) -> str:
        return f"{self.kind}/{len(self.choices)}"


@dataclass(frozen=True)
class SearchSpace:
    """Decisions over the config of ``base``; ``proxy`` overrides shrink every member for proxy training.

    Subclasses define ``decisions`` and ``_overrides(values)``, the override dict of one member given
    its chosen values by decision name.
    """

    name: str
    base: str
    proxy: Mapping[str, Any] = field(default_factory=dict)
    image_size: int = 32  # the proxy input every member must take
    in_channels: int = 1

    @property
    def decisions(self) -> tuple[Decision, ...]:
        raise NotImplementedError

    def _overrides(self, values: Mapping[str, Any]) -> Architecture:
        raise NotImplementedError

    # ----------------------------------------------------------------- members
    @property
    def size(self) -> int:
        """How many members the space has."""
        return math.prod(len(d.choices) for d in self.decisions)

    def check_indices(self, indices: Sequence[int]) -> tuple[int, ...]:
        decisions = self.decisions
        if len(indices) != len(decisions):
            raise ValueError(f"space {self.name!r} takes {len(decisions)} choices, got {len(indices)}")
        for index, decision in zip(indices, decisions):
            if not isinstance(index, int) or not 0 <= index < len(decision.choices):
                raise ValueError(
                    f"{decision.name}: choice {index!r} out of range; expected 0..{len(decision.choices) - 1}"
                )
        return tuple(int(i) for i in indices)

    def space_for(self, indices: Sequence[int]) -> SearchSpace:
        """The space whose members have this many decisions (itself; spaces of variable depth resize)."""
        return self

    def architecture(self, indices: Sequence[int]) -> Architecture:
        """The override dict of the member with these choice indices (proxy overrides included)."""
        space = self.space_for(indices)
        if space is not self:
            return space.architecture(indices)
        indices = self.check_indices(indices)
        values = {d.name: d.choices[i] for d, i in zip(self.decisions, indices)}
        return {**self.proxy, **self._overrides(values)}

    def full_size(self, architecture: Mapping[str, Any]) -> Architecture:
        """``architecture`` without the proxy shrinking: the network to train at full size (ImageNet)."""
        return {k: v for k, v in architecture.items() if k not in self.proxy}

    def random_indices(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(len(d.choices)) for d in self.decisions)

    def all_indices(self) -> list[tuple[int, ...]]:
        """Every member, in a fixed order (for exhaustive tables of small spaces)."""
        members: list[tuple[int, ...]] = [()]
        for decision in self.decisions:
            members = [(*m, i) for m in members for i in range(len(decision.choices))]
        return members

    def key(self, indices: Sequence[int]) -> str:
        """A stable string naming a member (``"0-2-1"``)."""
        return "-".join(str(i) for i in self.check_indices(indices))

    def describe(self) -> dict[str, Any]:
        """The space as JSON: what a search's state file records, so another space is recognised."""
        return {
            "name": self.name,
            "base": self.base,
            "proxy": dict(self.proxy),
            "decisions": [[d.name, list(d.choices)] for d in self.decisions],
        }

    # -------------------------------------------------------------- validation
    def build(self, architecture: Mapping[str, Any], *, num_classes: int = 10) -> Any:
        """The member on the meta device (no weights): parameters and shapes, nothing allocated."""
        return build_on_meta(self.base, num_classes=num_classes, in_channels=self.in_channels, **architecture)

    def validate(self, *, samples: int = 2, seed: int = 0) -> None:
        """Build the extreme members and a few random ones on the meta device; raise naming the bad one."""
        get_entry(self.base)
        check_int("image_size", self.image_size, min=1)
        decisions = self.decisions
        members = [tuple(0 for _ in decisions), tuple(len(d.choices) - 1 for d in decisions)]
        rng = random.Random(seed)
        members += [self.random_indices(rng) for _ in range(samples)]
        for indices in members:
            architecture = self.architecture(indices)
            try:
                model = self.build(architecture)
            except ValueError as error:
                raise ValueError(f"space {self.name!r}: member {self.key(indices)} is invalid: {error}") from None
            if model.min_input_size > self.image_size:
                raise ValueError(
                    f"space {self.name!r}: member {self.key(indices)} needs inputs >= {model.min_input_size} px; "
                    f"expected it to take the proxy's {self.image_size} px"
                )


# ------------------------------------------------------------------------------------------------
# (a) MnasNet's factorized hierarchical space over the shared MBConv rows


@dataclass(frozen=True)
class MBConvSpace(SearchSpace):
    """Per row of ``rows``: kernel, expansion, squeeze-excite ratio, repeats (base + delta), filter factor.

    Repeat deltas that would leave a row without blocks are left out for that row (MnasNet-B1's first
    row has one block, so it chooses 1 or 2, never 0). Filter factors scale the row's ``out_channels``
    before the width multiplier rounds them to multiples of 8 (the paper's 0.75 / 1.0 / 1.25).
    """

    rows: tuple[MBConvRow, ...] = B1_ROWS
    kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[float, ...] = (1, 3, 6)
    se_ratios: tuple[float, ...] = (0.0, 0.25)
    repeat_deltas: tuple[int, ...] = (-1, 0, 1)
    filter_factors: tuple[float, ...] = (0.75, 1.0, 1.25)

    def __post_init__(self) -> None:
        for name in ("kernels", "expansions", "se_ratios", "repeat_deltas", "filter_factors"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty; expected at least one choice")
        self.validate()

    @property
    def decisions(self) -> tuple[Decision, ...]:
        decisions = []
        for index, row in enumerate(self.rows):
            repeats = tuple(sorted({row.repeats + d for d in self.repeat_deltas if row.repeats + d >= 1}))
            if not repeats:
                raise ValueError(
                    f"rows[{index}] has {row.repeats} blocks; repeat deltas {self.repeat_deltas} leave it none"
                )
            decisions += [
                Decision(f"rows[{index}].kernel_size", "kernel_size", self.kernels),
                Decision(f"rows[{index}].expand_ratio", "expand_ratio", self.expansions),
                Decision(f"rows[{index}].se_ratio", "se_ratio", self.se_ratios),
                Decision(f"rows[{index}].repeats", "repeats", repeats),
                Decision(f"rows[{index}].filter_factor", "filter_factor", self.filter_factors),
            ]
        return tuple(decisions)

    def _overrides(self, values: Mapping[str, Any]) -> Architecture:
        rows = []
        for index, row in enumerate(self.rows):
            choice = {k: values[f"rows[{index}].{k}"] for k in ("kernel_size", "expand_ratio", "se_ratio", "repeats")}
            out_channels = max(1, round(row.out_channels * values[f"rows[{index}].filter_factor"]))
            rows.append(row._replace(out_channels=out_channels, **choice)._asdict())
        return {"rows": tuple(rows)}


# ------------------------------------------------------------------------------------------------
# (b) stage depths and widths of a non-mobile family


@dataclass(frozen=True)
class StageSpace(SearchSpace):
    """Per stage: a depth from ``depth_choices[stage]`` and a width from ``width_choices[stage]``."""

    depth_choices: tuple[tuple[int, ...], ...] = ((1, 2, 3),) * 4
    width_choices: tuple[tuple[int, ...], ...] = ((16, 24, 32), (32, 48, 64), (64, 96, 128), (128, 192, 256))

    def __post_init__(self) -> None:
        if len(self.depth_choices) != len(self.width_choices) or not self.depth_choices:
            raise ValueError(
                f"depth_choices ({len(self.depth_choices)} stages) and width_choices ({len(self.width_choices)}) "
                "must be non-empty and of equal length"
            )
        self.validate()

    @property
    def decisions(self) -> tuple[Decision, ...]:
        decisions = []
        for stage, (depths, widths) in enumerate(zip(self.depth_choices, self.width_choices)):
            decisions += [
                Decision(f"depths[{stage}]", "depth", tuple(depths)),
                Decision(f"widths[{stage}]", "width", tuple(widths)),
            ]
        return tuple(decisions)

    def _overrides(self, values: Mapping[str, Any]) -> Architecture:
        stages = range(len(self.depth_choices))
        return {
            "depths": tuple(values[f"depths[{s}]"] for s in stages),
            "widths": tuple(values[f"widths[{s}]"] for s in stages),
        }


# ------------------------------------------------------------------------------------------------
# (c) Zoph & Le's whole-architecture space


@dataclass(frozen=True)
class ZophLeSpace(SearchSpace):
    """``depth`` layers, each with filters, kernel height and width, stride and one skip bit per earlier layer.

    Choices follow the paper's CIFAR-10 space (filter height and width in 1, 3, 5, 7, filters in
    24, 36, 48, 64, section 4.1). Strides are 1 or 2; a stride-2 choice past ``max_reductions`` strided
    layers is taken as 1, so every member still takes the proxy image (the paper's 32 px CIFAR faces the
    same limit). The previous layer is always an input, the skip bits add layers ``0..i-2``.
    """

    depth: int = 6
    max_depth: int = 12
    filters: tuple[int, ...] = (24, 36, 48, 64)
    kernel_heights: tuple[int, ...] = (1, 3, 5, 7)
    kernel_widths: tuple[int, ...] = (1, 3, 5, 7)
    strides: tuple[int, ...] = (1, 2)
    max_reductions: int = 3
    _resized: dict[int, ZophLeSpace] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_int("depth", self.depth, min=1)
        check_int("max_depth", self.max_depth, min=self.depth)
        check_int("max_reductions", self.max_reductions, min=0)
        for stride in self.strides:
            check_choice("strides", stride, (1, 2))
        self.validate()

    def with_depth(self, depth: int) -> ZophLeSpace:
        """The same space at another depth (at most ``max_depth``): the controller's growing depth."""
        import dataclasses

        depth = min(depth, self.max_depth)
        if depth == self.depth:
            return self
        if depth not in self._resized:  # each depth is validated once
            self._resized[depth] = dataclasses.replace(self, depth=depth)
        return self._resized[depth]

    @staticmethod
    def decision_count(depth: int) -> int:
        """4 tokens per layer plus one skip bit per layer before the previous one."""
        return 4 * depth + (depth - 1) * (depth - 2) // 2

    def space_for(self, indices: Sequence[int]) -> SearchSpace:
        for depth in range(1, self.max_depth + 1):
            if self.decision_count(depth) == len(indices):
                return self.with_depth(depth)
        return self  # check_indices names the mismatch

    @property
    def decisions(self) -> tuple[Decision, ...]:
        decisions = []
        for layer in range(self.depth):
            decisions += [
                Decision(f"layers[{layer}].filters", "filters", self.filters),
                Decision(f"layers[{layer}].kernel_height", "kernel_height", self.kernel_heights),
                Decision(f"layers[{layer}].kernel_width", "kernel_width", self.kernel_widths),
                Decision(f"layers[{layer}].stride", "stride", self.strides),
            ]
            decisions += [Decision(f"layers[{layer}].skip[{j}]", "skip", (False, True)) for j in range(layer - 1)]
        return tuple(decisions)

    def _overrides(self, values: Mapping[str, Any]) -> Architecture:
        layers, reductions = [], 0
        for layer in range(self.depth):
            stride = values[f"layers[{layer}].stride"]
            if stride == 2:
                reductions += 1
                stride = 2 if reductions <= self.max_reductions else 1
            skips = tuple(j for j in range(layer - 1) if values[f"layers[{layer}].skip[{j}]"])
            layers.append(
                ZophLeLayer(
                    values[f"layers[{layer}].filters"],
                    values[f"layers[{layer}].kernel_height"],
                    values[f"layers[{layer}].kernel_width"],
                    stride,
                    skips,
                )._asdict()
            )
        return {"layers": tuple(layers)}


# ------------------------------------------------------------------------------------------------
# (d) one op per layer (the benchmark family ``nasbench_mb``)


@dataclass(frozen=True)
class OpSpace(SearchSpace):
    """Per searchable layer of an op-per-layer family (``ops`` field): one op from ``ops``.

    The family's default ``layers_per_stage`` says how many layers there are; every op of
    ``ops`` must be in the family's vocabulary (checked when the space is validated).
    """

    layers: int = 4
    ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_int("layers", self.layers, min=1)
        if not self.ops:
            raise ValueError("ops is empty; expected at least one op")
        self.validate()

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(Decision(f"ops[{layer}]", "op", self.ops) for layer in range(self.layers))

    def _overrides(self, values: Mapping[str, Any]) -> Architecture:
        return {"ops": tuple(values[f"ops[{layer}]"] for layer in range(self.layers))}


# ------------------------------------------------------------------------------------------------
# The registered spaces, by name


def _mnasnet() -> SearchSpace:
    # Proxy: half width, a 256-channel head conv instead of 1280 (the ImageNet config drops both).
    return MBConvSpace("mnasnet", "mnasnet1_0", proxy={"width_multiplier": 0.5, "head_channels": 256, "drop_rate": 0.0})


def _mnasnet_oneshot() -> SearchSpace:
    # The one-shot search's space, which a supernet covers (``search.supernet``): one width per row,
    # kernel 3/5/7 sharing one superkernel per layer, a single expansion and no SE (with two or more
    # the supernet stayed at chance loss on the proxy, benchmarks/search_evaluators.md), repeats -1/0/+1.
    return MBConvSpace(
        "mnasnet_oneshot",
        "mnasnet1_0",
        proxy={"width_multiplier": 0.5, "head_channels": 256, "drop_rate": 0.0},
        expansions=(6,),
        se_ratios=(0.0,),
        filter_factors=(1.0,),
    )


def _resnet() -> SearchSpace:
    return StageSpace("resnet", "resnet18", proxy={"stem_channels": 16})


def _nasbench_resnet() -> SearchSpace:
    # 4 stages x depth {1, 2} x width {w, 2w}: 256 members, small enough to evaluate every one.
    return StageSpace(
        "nasbench_resnet",
        "resnet18",
        proxy={"stem_channels": 8},
        depth_choices=((1, 2),) * 4,
        width_choices=((8, 16), (16, 32), (32, 64), (64, 128)),
    )


def _nasbench_mb() -> SearchSpace:
    # 4 layers x 5 ops (skip, 3x3 / 5x5 depthwise, expansion 1 / 4): 625 members, each trained with
    # 3 seeds in benchmarks/nasbench_mb/ (the table strategies are compared on). Proxy: half the
    # family's widths, so capacity limits MNIST accuracy (pilots in benchmarks/nasbench_mb/README.md).
    from vision_backbones.models.nasbench_mb import OPS

    proxy = {"stem_channels": 8, "widths": (8, 16, 32), "head_channels": 32}
    return OpSpace("nasbench_mb", "nasbench_mb", proxy=proxy, image_size=16, layers=4, ops=OPS)


def _zoph_le() -> SearchSpace:
    return ZophLeSpace("zoph_le", "zoph_le_plain8")


SPACES: dict[str, Callable[[], SearchSpace]] = {
    "mnasnet": _mnasnet,
    "mnasnet_oneshot": _mnasnet_oneshot,
    "resnet": _resnet,
    "nasbench_resnet": _nasbench_resnet,
    "nasbench_mb": _nasbench_mb,
    "zoph_le": _zoph_le,
}


def get_space(name: str) -> SearchSpace:
    """The registered space ``name`` (validated as it is built; built once per process)."""
    if not isinstance(name, str) or name not in SPACES:  # checked before the cache: a list was "unhashable type"
        raise ValueError(f"unknown space {name!r}; expected one of {', '.join(SPACES)}")
    return _built_space(name)


@functools.cache
def _built_space(name: str) -> SearchSpace:
    return SPACES[name]()


# ------------------------------------------------------------------------------------------------
# Architectures as files


def to_json(architecture: Mapping[str, Any]) -> dict[str, Any]:
    """The override dict with tuples as lists (what JSON holds)."""
    converted: dict[str, Any] = jsonable(dict(architecture))
    return converted


def from_json(architecture: Mapping[str, Any]) -> Architecture:
    """The override dict with JSON lists back as tuples (config fields are tuples)."""
    return {k: lists_to_tuples(v) for k, v in architecture.items()}


def save_architecture(path: str | os.PathLike[str], base: str, architecture: Mapping[str, Any], **extra: Any) -> Path:
    """Write ``{"model": base, "overrides": {...}, ...extra}`` atomically; ``load_architecture`` reads it."""
    return write_json(path, {"model": base, "overrides": to_json(architecture), **extra})


def load_architecture(path: str | os.PathLike[str]) -> tuple[str, Architecture]:
    """``(model, overrides)`` from a file of ``save_architecture``: ``create_model(model, **overrides)``."""
    payload = read_json(path)  # a missing or bad file: one line naming it
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("model"), str)
        or not isinstance(payload.get("overrides"), dict)
    ):
        raise ValueError(
            f"architecture file {str(path)!r}: expected an object with 'model' (str) and 'overrides' (object)"
        )
    return payload["model"], from_json(payload["overrides"])
