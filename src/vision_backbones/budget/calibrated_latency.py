"""NetAdapt's latency model: the search's per-block table, calibrated by measuring whole networks.

Each distinct block is timed once on this machine (``search.latency.LatencyTable``, kept in memory for
the run); the block sum is scaled by the last whole-network measurement, because on this CPU the
sum alone was found 30 % off for thinner networks (mobilenet_v2 at width 0.7: 25 ms predicted, 35 ms
measured). The sum only picks each knob's candidate width; measurements decide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vision_backbones.budget.knobs import Knob, candidate_widths, with_channels
from vision_backbones.registry import build_on_meta, create_model


class LatencyModel:
    """Per-block predicted latency, calibrated by measuring whole networks now and then."""

    def __init__(
        self, name: str, image_size: int, threads: int, repeats: int, table_path: Path | None, clock: str = "wall"
    ) -> None:
        from vision_backbones.search.latency import LatencySettings, LatencyTable

        self.name, self.image_size, self.threads, self.repeats, self.clock = name, image_size, threads, repeats, clock
        settings = LatencySettings(image_size=image_size, threads=threads, repeats=5, warmup=2, clock=clock)
        self.table = LatencyTable.load(table_path, settings)  # table_path None: in memory for the run
        self.calibration = 1.0

    def raw_ms(self, overrides: dict[str, Any]) -> float:
        """The uncalibrated block sum of the network ``overrides`` give."""
        return self.table.predict_ms(build_on_meta(self.name, num_classes=1000, **overrides), save=False)

    def predict(self, overrides: dict[str, Any]) -> float:
        return self.calibration * self.raw_ms(overrides)

    def measure(self, overrides: dict[str, Any], *, calibrate: bool = True) -> float:
        """Whole-network latency at 3 input channels and 1000 classes; ``calibrate``: rescale the table by it."""
        from vision_backbones.search.latency import measure_latency_ms

        torch.manual_seed(0)
        model = create_model(self.name, num_classes=1000, **overrides)
        measured = measure_latency_ms(
            model, image_size=self.image_size, threads=self.threads, repeats=self.repeats, warmup=2, clock=self.clock
        )
        if calibrate:
            self.calibration = measured / self.raw_ms(overrides)
        return measured


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
