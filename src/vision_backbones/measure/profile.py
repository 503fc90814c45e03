"""Parameters, FLOPs, activation memory and speed of models, measured one way for all (``backbones profile``).

Every model is measured the same way: FLOPs on meta tensors (the seed's convention and 2 x MACs,
per feature level and in total), activation memory of an eval forward (peak bytes alive beyond the
weights and the input) and of a training step (bytes saved for backward), then timings with
warm-up and several repetitions, reported as median and spread (quartiles, min/max):

* latency of one eval forward and of one training step (forward + backward + SGD step) at
  ``batch_size`` (1 by default);
* throughput (images/s) of both at ``throughput_batch``.

:mod:`~vision_backbones.measure.profile_plot` draws the results; :mod:`vision_backbones.cli.profile`
is the command.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from vision_backbones.io import atomic_write
from vision_backbones.measure.machine import cpu_model, isa_flags
from vision_backbones.measure.memory import LiveActivationMemory, SavedForBackward
from vision_backbones.measure.steps import autocast, training_step
from vision_backbones.measure.timing import num_threads, summarize, time_calls

# --------------------------------------------------------------------------------------------- FLOPs


def level_flops(name: str, *, image_size: int) -> dict[str, Any]:
    """FLOPs of the features backbone at batch 1: the seed's convention and 2 x MACs, per level."""
    return copy.deepcopy(_level_flops(name, image_size))


@functools.lru_cache(maxsize=64)
def _level_flops(name: str, image_size: int) -> dict[str, Any]:
    from vision_backbones.flops import count_flops
    from vision_backbones.registry import build_on_meta

    model = build_on_meta(name, features_only=True)
    x = torch.empty(1, model.in_channels, image_size, image_size, device="meta")
    counted = count_flops(model, x)
    # torch annotates depth as int, but FlopCounterMode.get_table handles None (every depth)
    plain = FlopCounterMode(display=False, depth=None)  # type: ignore[arg-type]
    with plain, torch.no_grad():
        model.eval()(x)
    plain_per_module = {key: sum(ops.values()) for key, ops in plain.get_flop_counts().items()}
    root = type(model).__name__
    # A head conv that belongs to the last level (the default) counts in that level's FLOPs.
    last = len(model.stages) - 1
    with_head = model.head_conv is not None and model.head_conv_level

    def per_level(counts: dict[str, int]) -> list[int]:
        levels = [counts.get(f"{root}.stages.{i}", 0) for i in range(last + 1)]
        levels[last] += counts.get(f"{root}.head_conv", 0) if with_head else 0
        return levels

    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops": counted.total,
        "flops_2x_macs": 2 * counted.macs,
        "stem_flops": counted.per_module.get(f"{root}.stem", 0),
        "level_flops": per_level(counted.per_module),
        "level_flops_2x_macs": per_level(plain_per_module),
        "level_strides": list(model.level_strides),
    }


# --------------------------------------------------------------------------------------------- profile


def _prefixed(prefix: str, stats: dict[str, float] | None, unit: str) -> dict[str, float | None]:
    keys = ("median", "q1", "q3", "min", "max")
    if stats is None:
        return {f"{prefix}_{unit}": None, **{f"{prefix}_{k}_{unit}": None for k in keys[1:]}}
    return {f"{prefix}_{unit}": stats["median"], **{f"{prefix}_{k}_{unit}": stats[k] for k in keys[1:]}}


def profile_model(
    name: str,
    *,
    image_size: int = 224,
    batch_size: int = 1,
    throughput_batch: int = 16,
    dtype: str = "fp32",
    channels_last: bool = False,
    threads: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    num_classes: int = 1000,
    speed: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure one registered model; a flat dict (per-level FLOPs as lists).

    Params and FLOPs are the backbone's (no classifier head, like ``model_info``), per image.
    ``eval_activation_bytes``: peak bytes alive during an eval forward at ``batch_size`` beyond the
    weights and the input; ``train_saved_bytes``: bytes autograd keeps for backward in a training
    forward at ``batch_size`` (with bf16 autocast this includes the bf16 weight copies it saves). Latencies are milliseconds per call at ``batch_size``; throughputs are
    images/s at ``throughput_batch``. ``speed=False`` skips the timings (they are then ``None``).
    A training step that cannot run (e.g. batch norm on a 1x1 map at batch 1) gives ``None`` and
    the reason in ``train_error``. ``cpu``, ``isa`` and ``torch_cpu_capability`` record the machine
    (:mod:`vision_backbones.measure.machine`).
    """
    from vision_backbones.published import published_for
    from vision_backbones.registry import create_model, get_entry

    phase = on_phase or (lambda _: None)
    entry = get_entry(name)  # unknown names raise ValueError with suggestions
    autocast(dtype)  # validates dtype
    for label, value in (
        ("image_size", image_size),
        ("batch_size", batch_size),
        ("throughput_batch", throughput_batch),
        ("repeats", repeats),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    phase("FLOPs")
    result: dict[str, Any] = {
        "name": name,
        "family": entry.family,
        "image_size": image_size,
        "batch_size": batch_size,
        "throughput_batch": throughput_batch,
        "dtype": dtype,
        "channels_last": channels_last,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **level_flops(name, image_size=image_size),
    }
    published = published_for(name)
    result["published_top1"] = published.top1 if published is not None else None

    with num_threads(threads):
        torch.manual_seed(0)
        model = create_model(name, num_classes=num_classes).to(memory_format=memory_format)
        result["params_with_head"] = sum(p.numel() for p in model.parameters())
        in_channels = model.in_channels
        model.eval().check_input(
            torch.empty(1, in_channels, image_size, image_size, device="meta")
        )  # size only: a training step that cannot run is reported in train_error

        def batch(size: int) -> tuple[Tensor, Tensor]:
            x = torch.randn(size, in_channels, image_size, image_size).contiguous(memory_format=memory_format)
            return x, torch.randint(0, num_classes, (size,))

        weights = [*model.parameters(), *model.buffers()]
        x, target = batch(batch_size)

        phase("memory")
        model.eval()
        tracker = LiveActivationMemory(ignore=[*weights, x])
        with torch.no_grad(), autocast(dtype), tracker:
            model(x)
        result["eval_activation_bytes"] = tracker.peak
        model.train()
        saved = SavedForBackward(ignore=[*weights, x])
        result["train_error"] = None
        try:
            with saved, autocast(dtype):
                output = model(x)
            result["train_saved_bytes"] = saved.bytes
            del output
        except (RuntimeError, ValueError) as error:  # e.g. batch norm on one value per channel
            result["train_saved_bytes"] = None
            result["train_error"] = str(error).splitlines()[0]

        timings: dict[str, dict[str, float] | None] = {
            "eval_latency": None,
            "eval_throughput": None,
            "train_latency": None,
            "train_throughput": None,
        }
        if speed:
            big_x, big_target = batch(throughput_batch)
            model.eval()
            with torch.inference_mode(), autocast(dtype):
                phase("eval latency")
                timings["eval_latency"] = summarize(time_calls(lambda: model(x), repeats=repeats, warmup=warmup))
                phase("eval throughput")
                times = time_calls(lambda: model(big_x), repeats=repeats, warmup=warmup)
                timings["eval_throughput"] = summarize([throughput_batch * 1e3 / ms for ms in times])
            if result["train_error"] is None:
                model.train()
                try:
                    phase("train latency")
                    step = training_step(model, x, target, dtype=dtype)
                    timings["train_latency"] = summarize(time_calls(step, repeats=repeats, warmup=max(1, warmup)))
                    phase("train throughput")
                    step = training_step(model, big_x, big_target, dtype=dtype)
                    times = time_calls(step, repeats=repeats, warmup=max(1, warmup))
                    timings["train_throughput"] = summarize([throughput_batch * 1e3 / ms for ms in times])
                except (RuntimeError, ValueError) as error:
                    result["train_error"] = str(error).splitlines()[0]
        result.update(_prefixed("eval_latency", timings["eval_latency"], "ms"))
        result.update(_prefixed("eval_throughput", timings["eval_throughput"], "ips"))
        result.update(_prefixed("train_latency", timings["train_latency"], "ms"))
        result.update(_prefixed("train_throughput", timings["train_throughput"], "ips"))
    return result


# --------------------------------------------------------------------------------------------- output


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def write_csv(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    columns: list[str] = []
    for row in results:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in results:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
