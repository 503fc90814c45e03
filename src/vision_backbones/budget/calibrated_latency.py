"""NetAdapt's latency model: a predictor (by default the search's per-block table), calibrated by
measuring whole networks.

Each distinct block is timed once on this machine (``search.latency.LatencyTable``, kept in memory for
the run), or any object with ``predict_ms(model_on_meta) -> float`` stands in for the table; the
prediction is scaled by the last whole-network measurement, because on this CPU the block sum alone
was found 30 % off for thinner networks (mobilenet_v2 at width 0.7: 25 ms predicted, 35 ms measured).
The prediction picks each knob's width and the step's proposal, as NetAdapt's look-up tables do; the
whole network is measured now and then to confirm it (and recalibrate).

Every whole-network measurement is *ruled* (``measure.ruler``): timed alternately with a fixed network and
scaled to that ruler's reference speed, the one stored with the kernel predictor when there is one (its
predictions and the measurements are then in the same units), else calibrated at the first measurement.
Raw timings swung by up to 50 % within one NetAdapt run on the shared 2-core machine
(``benchmarks/budget/netadapt_vs_width.md``); the ruled ones follow the network, not the neighbours.
Ruling cancels a slow patch only to first order (a start read 40 % high on AMD EPYC), so a measurement
also passes the ruler's quiet gate (``measure.ruler.QUIET_GATE``): it is taken again while the ruler runs more
than 10 % above its quiet speed. With one thread, measurements run in a young copy of the process
(``measure.isolated.YoungProcess``), so NetAdapt's start and end are timed in the same state of it.
"""

from __future__ import annotations

import weakref
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from vision_backbones.budget.knobs import Knob, candidate_widths, with_channels
from vision_backbones.registry import build_on_meta, create_model

if TYPE_CHECKING:
    from vision_backbones.measure.isolated import ThisProcess, YoungProcess


class LatencyPredictor(Protocol):
    """What may stand in for the per-block table (``measure.predictor.KernelPredictor``): a latency in ms
    for a network built on meta (3 input channels, 1000 classes) on an input of ``input_shape`` (batch 1,
    the run's image size)."""

    def predict_ms(self, model_on_meta: nn.Module, input_shape: tuple[int, ...]) -> float: ...


class LatencyModel:
    """Predicted latency (``predictor``, or the per-block table), calibrated by measuring whole networks now and then."""

    def __init__(
        self,
        name: str,
        image_size: int,
        threads: int,
        repeats: int,
        table_path: Path | None,
        clock: str = "wall",
        predictor: LatencyPredictor | None = None,
    ) -> None:
        self.name, self.image_size, self.threads, self.repeats, self.clock = name, image_size, threads, repeats, clock
        self.predictor = predictor
        self.table_path = table_path
        self.table: Any = None  # the block table, made on first use when no predictor is given
        self.calibration = 1.0
        # where whole networks are measured, made at the first measurement: a young copy of this process
        # (one thread), else this process (measure.isolated.young_copy); its state holds the ruler
        self.young: YoungProcess | ThisProcess | None = None

    def raw_ms(self, overrides: dict[str, Any]) -> float:
        """The uncalibrated prediction for the network ``overrides`` give."""
        model = build_on_meta(self.name, num_classes=1000, **overrides)
        if self.predictor is not None:
            shape = (1, int(getattr(model, "in_channels", 3)), self.image_size, self.image_size)
            return float(self.predictor.predict_ms(model, shape))
        if self.table is None:
            from vision_backbones.search.latency import LatencySettings, LatencyTable

            settings = LatencySettings(
                image_size=self.image_size, threads=self.threads, repeats=5, warmup=2, clock=self.clock
            )
            self.table = LatencyTable.load(self.table_path, settings)  # table_path None: in memory for the run
        return float(self.table.predict_ms(model, save=False))

    def predict(self, overrides: dict[str, Any]) -> float:
        return self.calibration * self.raw_ms(overrides)

    def measure(self, overrides: dict[str, Any], *, calibrate: bool = True) -> float:
        """Whole-network latency at 3 input channels and 1000 classes; ``calibrate``: rescale the table by it.

        With one thread, every measurement runs in a fork of a copy of this process made at the first one
        (:class:`~vision_backbones.measure.isolated.YoungProcess`): NetAdapt measures its start before it
        trains, its end after, and eager PyTorch slows as a process ages."""
        from vision_backbones.measure.isolated import young_copy
        from vision_backbones.measure.timing import num_threads

        with num_threads(self.threads):
            if self.young is None:
                self.young = young_copy()
                weakref.finalize(self, self.young.close)
                self.young.setup(partial(_make_ruler, self.clock, getattr(self.predictor, "ruler_ms", None)))
            measured = self.young.run(partial(_measure_in, self.name, overrides, self.image_size, self.repeats))
        if calibrate:
            self.calibration = measured / self.raw_ms(overrides)
        return measured


def _make_ruler(clock: str, reference_ms: float | None, state: dict[str, Any]) -> None:
    """The measuring process's ruler, kept in ``state`` (its round history feeds the quiet gate)."""
    from vision_backbones.measure.ruler import Ruler

    state["ruler"] = Ruler.network(clock=clock, reference_ms=reference_ms)


def _measure_in(name: str, overrides: dict[str, Any], image_size: int, repeats: int, state: dict[str, Any]) -> float:
    """One gated, ruled measurement of ``name`` with ``overrides``, against ``state["ruler"]``."""
    from vision_backbones.measure.ruler import gated_ms

    torch.manual_seed(0)
    model = create_model(name, num_classes=1000, **overrides).eval()
    example = torch.randn(1, int(getattr(model, "in_channels", 3)), image_size, image_size)
    with torch.no_grad():
        return gated_ms(lambda: model(example), state["ruler"], repeats=repeats, warmup=2).ms


def widest_meeting(
    latency: LatencyModel, name: str, overrides: dict[str, Any], knob: Knob, goal_ms: float
) -> int | None:
    """The widest possible width below the knob's whose predicted latency meets ``goal_ms`` (bisection:
    latency grows with width), or ``None`` when even the narrowest does not."""
    widths = candidate_widths(name, overrides, knob)
    if not widths or latency.predict(with_channels(name, overrides, knob, widths[0])) > goal_ms:
        return None
    low, high = 0, len(widths) - 1  # widths[low] meets the goal
    while low < high:
        middle = (low + high + 1) // 2
        if latency.predict(with_channels(name, overrides, knob, widths[middle])) <= goal_ms:
            low = middle
        else:
            high = middle - 1
    return widths[low]
