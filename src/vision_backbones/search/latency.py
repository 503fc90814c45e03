"""Latency on this machine: measured, and predicted from a per-block lookup table.

``measure_latency_ms`` is the figure a latency-aware search optimises (MnasNet measured on a phone;
here the CPU the search runs on): batch, threads and image size fixed, eval mode, no gradients, a
warm-up, then the median of repeated calls (``measure.timing``).

``LatencyTable`` predicts a network's latency as the sum of its blocks' latencies (MnasNet's and
FBNet's lookup tables; nn-Meter, https://github.com/microsoft/nn-Meter, reports such predictors by
the share of networks predicted within +-10 % of measured). A *block* is the stem, each child of each
stage (one inverted residual block, one ResNet block), the head conv and the classifier head. Its key
is its module ``repr`` (every conv's channels, kernel, stride, groups; every layer's class) plus the
shape of its input, so two blocks with the same key run the same kernels. Each distinct block is
measured once, on its own, and cached in a JSON file under the machine's CPU model and the settings;
a table built on another CPU, or with other settings, is never used for this one. Finding a network's
blocks and their input shapes needs one forward on the meta device only, so predicting costs no
compute once the table holds the blocks.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.io import atomic_write_bytes
from vision_backbones.measure.machine import cpu_model
from vision_backbones.measure.timing import time_calls
from vision_backbones.validate import check_choice, check_int

CLOCKS = ("wall", "cpu")  # ``measure.timing.time_calls``'s clocks


@torch.no_grad()
def measure_latency_ms(
    model: nn.Module,
    *,
    image_size: int,
    batch: int = 1,
    threads: int = 1,
    repeats: int = 15,
    warmup: int = 3,
    in_channels: int | None = None,
    clock: str = "wall",
    example: Tensor | None = None,
) -> float:
    """Median milliseconds of one forward of ``model`` on a random ``(batch, C, image_size, image_size)`` input.

    ``C`` is ``in_channels`` or the model's own ``in_channels``; ``example`` replaces the random input.
    ``clock="cpu"`` times this process's CPU time instead of wall time (steadier on a shared machine).
    The model's train/eval mode is restored afterwards.
    """
    check_int("image_size", image_size, min=1)
    check_int("batch", batch, min=1)
    check_int("threads", threads, min=1)
    check_int("repeats", repeats, min=1)
    check_int("warmup", warmup, min=0)
    check_choice("clock", clock, CLOCKS)
    if example is None:
        channels = in_channels if in_channels is not None else getattr(model, "in_channels", 3)
        example = torch.randn(batch, channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        times = time_calls(lambda: model(example), repeats=repeats, warmup=warmup, clock=clock, threads=threads)
    finally:
        model.train(was_training)
    return statistics.median(times)


# ----------------------------------------------------------------- blocks of a network


def network_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks a latency table sums, in order: stem, each stage's children, head conv, head."""
    blocks: list[nn.Module] = []
    stem = getattr(model, "stem", None)
    if stem is not None and not isinstance(stem, nn.Identity):
        blocks.append(stem)
    for stage in getattr(model, "stages", ()):
        blocks.extend(stage.children() if isinstance(stage, nn.Sequential) else [stage])
    for name in ("head_conv", "head"):
        module = getattr(model, name, None)
        if module is not None:
            blocks.append(module)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no stem, stages or head; expected a Backbone")
    return blocks


@torch.no_grad()
def block_inputs(model: nn.Module, blocks: Sequence[nn.Module], example: Tensor) -> list[tuple[int, ...]]:
    """The input shape of each block during one forward of ``model`` on ``example`` (meta tensors work)."""
    shapes: dict[int, tuple[int, ...]] = {}

    def recorder(index: int) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            shapes.setdefault(index, tuple(args[0].shape))

        return record

    hooks = [block.register_forward_pre_hook(recorder(i)) for i, block in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    missing = [i for i in range(len(blocks)) if i not in shapes]
    if missing:
        raise ValueError(f"blocks {missing} did not run in the forward; expected every block on the path")
    return [shapes[i] for i in range(len(blocks))]


def block_key(block: nn.Module, input_shape: Sequence[int]) -> str:
    """What decides a block's kernels: its structure (``repr``) and its input shape."""
    return f"{tuple(input_shape)} {' '.join(repr(block).split())}"


def _materialize(block: nn.Module) -> nn.Module:
    """A CPU copy of ``block``; one found on the meta device gets fresh weights (``reset_parameters``)."""
    copied = copy.deepcopy(block)
    if any(t.is_meta for t in itertools.chain(copied.parameters(), copied.buffers())):
        copied = copied.to_empty(device="cpu")
        torch.manual_seed(0)
        for module in copied.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()  # conv / linear / batch norm defaults: no denormals, no NaN
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    return copied.eval()


@dataclass(frozen=True)
class LatencySettings:
    """What a latency figure depends on besides the network; part of every table's key."""

    image_size: int = 224
    batch: int = 1
    threads: int = 1
    in_channels: int = 3
    repeats: int = 15
    warmup: int = 3
    clock: str = "wall"

    def __post_init__(self) -> None:
        for name in ("image_size", "batch", "threads", "in_channels", "repeats"):
            check_int(name, getattr(self, name), min=1)
        check_int("warmup", self.warmup, min=0)
        check_choice("clock", self.clock, CLOCKS)

    def key(self) -> str:
        return f"{cpu_model()} | torch {torch.__version__} | " + " ".join(f"{k}={v}" for k, v in asdict(self).items())


@dataclass
class LatencyTable:
    """Per-block latencies on this machine, kept in ``path`` (JSON) when given.

    ``predict_ms(model)`` is the sum over the model's blocks; blocks not yet in the table are
    measured first (and saved). ``measured_blocks`` counts the measurements this object made.
    """

    settings: LatencySettings = field(default_factory=LatencySettings)
    path: Path | None = None
    entries: dict[str, float] = field(default_factory=dict)
    measured_blocks: int = 0

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None, settings: LatencySettings | None = None) -> LatencyTable:
        """The table for this machine and ``settings`` stored in ``path`` (empty when there is none yet)."""
        settings = settings or LatencySettings()
        table = cls(settings=settings, path=Path(path) if path is not None else None)
        if table.path is not None and table.path.exists():
            try:
                stored = json.loads(table.path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"latency table {str(table.path)!r} is not valid JSON ({error}); expected a file this class wrote"
                ) from None
            table.entries = dict(stored.get("tables", {}).get(settings.key(), {}))
        return table

    def save(self) -> None:
        if self.path is None:
            return
        stored: dict[str, Any] = {"tables": {}}
        if self.path.exists():
            stored = json.loads(self.path.read_text())
        stored.setdefault("tables", {})[self.settings.key()] = dict(sorted(self.entries.items()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(stored, indent=1).encode())

    def _example(self, model: nn.Module, device: str) -> Tensor:
        s = self.settings
        return torch.empty(s.batch, s.in_channels, s.image_size, s.image_size, device=device)

    def _block_shapes(self, model: nn.Module) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
        blocks = network_blocks(model)
        on_meta = next(model.parameters()).is_meta
        example = self._example(model, "meta" if on_meta else "cpu")
        if not on_meta:
            example = example.normal_()
        shapes = block_inputs(model, blocks, example)
        return [(block_key(b, s), b, s) for b, s in zip(blocks, shapes)]

    def measure_block(self, block: nn.Module, input_shape: Sequence[int]) -> float:
        s = self.settings
        runnable = _materialize(block)
        example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
        return measure_latency_ms(
            runnable,
            image_size=1,
            threads=s.threads,
            repeats=s.repeats,
            warmup=s.warmup,
            clock=s.clock,
            example=example,
        )

    def block_latencies(self, model: nn.Module, *, save: bool = True) -> list[tuple[str, float]]:
        """``(key, ms)`` of each block of ``model``, measuring the ones the table lacks."""
        found = []
        added = False
        for key, block, shape in self._block_shapes(model):
            if key not in self.entries:
                self.entries[key] = self.measure_block(block, shape)
                self.measured_blocks += 1
                added = True
            found.append((key, self.entries[key]))
        if added and save:
            self.save()
        return found

    def predict_ms(self, model: nn.Module, *, save: bool = True) -> float:
        """Predicted latency of ``model``: the sum of its blocks' table entries."""
        return sum(ms for _, ms in self.block_latencies(model, save=save))

    def measure_ms(self, model: nn.Module) -> float:
        """The whole model measured with the table's settings (what ``predict_ms`` predicts)."""
        s = self.settings
        runnable = _materialize(model) if next(model.parameters()).is_meta else model
        return measure_latency_ms(
            runnable,
            image_size=s.image_size,
            batch=s.batch,
            threads=s.threads,
            repeats=s.repeats,
            warmup=s.warmup,
            in_channels=s.in_channels,
            clock=s.clock,
        )


def within_share(predicted: Sequence[float], measured: Sequence[float], *, tolerance: float = 0.10) -> float:
    """Share of predictions within ``+-tolerance`` of the measured value (nn-Meter's accuracy figure)."""
    if len(predicted) != len(measured) or not predicted:
        raise ValueError(
            f"need equal, non-empty lists, got {len(predicted)} predictions and {len(measured)} measurements"
        )
    return sum(abs(p - m) <= tolerance * m for p, m in zip(predicted, measured)) / len(predicted)
