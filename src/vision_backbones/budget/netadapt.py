"""NetAdapt on this machine: shrink a model's channels until it meets a latency target.

"NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications" (Yang et al., ECCV
2018, https://arxiv.org/abs/1804.03230), the step MobileNetV3 used after its search. Each step asks
for ``step_fraction`` x the starting latency less; for every knob (one channel entry the family
declares: ``widths[i]``, ``rows[i].out_channels``, ``head_channels``, see :mod:`.knobs`) it proposes
the widest possible width whose predicted latency meets that step's goal, inherits the current
weights (the first channels of every tensor), fine-tunes it briefly on the proxy task and keeps the
proposal with the best accuracy change per millisecond saved. It stops once the *measured* latency
is within ``tolerance`` of the target.

Latency (:mod:`.calibrated_latency`): the per-block table, calibrated every step by the measured
current network, picks each knob's candidate width; every proposal is then *measured*
(``search.latency.measure_latency_ms``: 3 input channels, 1000 classes, the given image size) and
the measurement decides. The command line is ``backbones adapt`` (:mod:`vision_backbones.cli.adapt`).
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vision_backbones.budget.calibrated_latency import LatencyModel, widest_meeting
from vision_backbones.budget.inherit import inherit_weights
from vision_backbones.budget.knobs import Knob, candidate_widths, channel_knobs, knob_channels, narrowest, with_channels
from vision_backbones.budget.proxy_data import check_proxy_data, load_splits
from vision_backbones.io import atomic_write_bytes, jsonable, load_torch_file, write_jsonl
from vision_backbones.registry import create_model
from vision_backbones.scaling import Multipliers, scaled_overrides
from vision_backbones.validate import check_choice, check_float, check_int


@dataclass
class AdaptResult:
    overrides: dict[str, Any]
    latency_ms: float
    start_latency_ms: float
    target_ms: float
    val_acc1: float
    test_acc1: float
    steps: list[dict[str, Any]]
    model: nn.Module
    seconds: float


FINE_TUNE_LR_FACTOR = 0.2  # inherited weights: the proxy task's one-cycle peak (lr 0.01) undoes them in 15 steps
PROXY_IMAGE_SIZE = 32  # the proxy images of every fine-tune (the latency is measured at --image-size)


def _train(
    model: nn.Module,
    splits: Any,
    task: Any,
    seed: int,
    epochs: int,
    train_images: int | None = None,
    *,
    fine_tune: bool = False,
) -> dict[str, Any]:
    from vision_backbones.search.evaluate import evaluate_model

    lr = task.lr * (FINE_TUNE_LR_FACTOR if fine_tune else 1.0)
    step_task = dataclasses.replace(task, epochs=max(1, epochs), train_images=train_images, lr=lr)
    subset = splits
    if train_images is not None:
        subset = dataclasses.replace(splits, train=(splits.train[0][:train_images], splits.train[1][:train_images]))
    return evaluate_model(model, step_task, seed=seed, splits=subset, train=epochs > 0)


STATE_FILE, LOG_FILE = "state.pt", "log.jsonl"  # in ``out``: every finished step, for resuming after a kill


def check_adapt_arguments(
    name: str,
    target_ms: float,
    *,
    target_fraction: float = 1.0,
    data: str = "mnist",
    image_size: int = 224,
    threads: int = 1,
    step_fraction: float = 0.02,
    tolerance: float = 0.05,
    pretrain_epochs: int = 3,
    proposal_images: int = 1000,
    final_epochs: int = 3,
    proxy_image_size: int = PROXY_IMAGE_SIZE,
    repeats: int = 10,
    seed: int = 0,
    max_steps: int = 60,
    clock: str = "wall",
    start_overrides: dict[str, Any] | None = None,
) -> list[Knob]:
    """Every argument of :func:`adapt` checked before anything is measured, trained or written (``backbones
    adapt`` calls it before creating ``--out``); returns the knobs. One ``ValueError`` naming the flag."""
    knobs = channel_knobs(name)

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)

    if not number(target_fraction) or not 0 < target_fraction <= 1:
        raise ValueError(
            f"--latency-fraction (target_fraction) must be a share of the starting latency in (0, 1], got {target_fraction!r}"
        )
    if not number(target_ms) or not target_ms > 0:
        raise ValueError(f"--latency-ms (target_ms) must be a positive number of milliseconds, got {target_ms!r}")
    if math.isinf(target_ms) and target_fraction >= 1:
        raise ValueError(
            "give a target: --latency-ms (target_ms) in milliseconds or --latency-fraction (target_fraction) < 1"
        )
    check_float("--step-fraction (step_fraction)", step_fraction, min=0.0, max=1.0, min_open=True, max_open=True)
    # a negative tolerance once produced a false statement about the target
    check_float("--tolerance (tolerance)", tolerance, min=0.0, max=1.0, max_open=True)
    check_int("--image-size (image_size)", image_size, min=8)
    check_int("--threads (threads)", threads, min=1)
    check_int("--pretrain-epochs (pretrain_epochs)", pretrain_epochs, min=0)
    check_int("--final-epochs (final_epochs)", final_epochs, min=0)
    check_int("--proposal-images (proposal_images)", proposal_images, min=1)
    check_int("proxy_image_size", proxy_image_size, min=8)
    check_int("--repeats (repeats)", repeats, min=1)
    check_int("--seed (seed)", seed, min=0)
    check_int("--max-steps (max_steps)", max_steps, min=1)
    check_choice("--clock (clock)", clock, ("wall", "cpu"))
    check_proxy_data(data)
    if start_overrides is not None:
        if not isinstance(start_overrides, dict):
            raise ValueError(f"--start (start_overrides) must be a dict of overrides, got {start_overrides!r}")
        knob_channels(name, dict(start_overrides), knobs[0])  # unknown or mistyped overrides: the registry's one line
    return knobs


def _identity(name: str, target_ms: float, settings: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the one it continues (``max_steps`` may grow); defaults filled in."""
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(check_adapt_arguments).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    merged = {**defaults, **settings}
    return jsonable({"name": name, "target_ms": target_ms, **{k: v for k, v in merged.items() if k != "max_steps"}})


def resume_state(out: Path, name: str, target_ms: float, **settings: Any) -> dict[str, Any] | None:
    """The saved state of a killed run with these settings in ``out`` (None when there is none); a corrupt
    state or one of other settings is one ``ValueError`` naming the file and what to do."""
    path = Path(out) / STATE_FILE
    if not path.exists():
        return None
    return _load_state(path, _identity(name, target_ms, settings))


def _load_state(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    fix = "pass --force to start over, or a new --out"
    state = load_torch_file(path, fix=fix)
    keys = ("identity", "start_ms", "target_ms", "steps", "overrides", "model")
    if not isinstance(state, dict) or any(k not in state for k in keys) or not state["steps"]:
        raise ValueError(f"{str(path)!r} is not a NetAdapt state (expected the keys {', '.join(keys)}); {fix}")
    recorded = state["identity"]
    if recorded != identity:
        differing = sorted(k for k in set(identity) | set(recorded) if identity.get(k) != recorded.get(k))
        raise ValueError(
            f"{str(path)!r} holds another NetAdapt run (differs in {', '.join(differing)}); "
            "expected the same settings to resume; pass --force to start over, or a new --out"
        )
    return state


def _save_state(out: Path, state: dict[str, Any]) -> None:
    """``state.pt`` (atomic: the old or the new step, never half of one), then the readable ``log.jsonl``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out / STATE_FILE, buffer.getvalue())
    write_jsonl(out / LOG_FILE, state["steps"])


def adapt(
    name: str,
    target_ms: float,
    *,
    data: str = "mnist",
    image_size: int = 224,
    threads: int = 1,
    step_fraction: float = 0.02,
    tolerance: float = 0.05,
    pretrain_epochs: int = 3,
    proposal_images: int = 1000,
    final_epochs: int = 3,
    proxy_image_size: int = PROXY_IMAGE_SIZE,
    repeats: int = 10,
    seed: int = 0,
    table_path: Path | None = None,
    max_steps: int = 60,
    clock: str = "wall",
    target_fraction: float = 1.0,
    start_overrides: dict[str, Any] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    out: Path | None = None,
    resume: bool = True,
) -> AdaptResult:
    """Shrink ``name`` until its measured latency is within ``tolerance`` of the target: ``target_ms``,
    or ``target_fraction`` of the measured starting latency when that is lower. ``start_overrides``:
    the architecture to start from (default: the registered one).

    ``out``: after every finished step, ``out/state.pt`` (the steps and the current proxy weights,
    written atomically) and ``out/log.jsonl``; with ``resume`` a run with the same settings continues
    from ``state.pt`` after a kill, no finished step lost or repeated. Nothing is written before the
    first step is done (a refused run leaves no folder)."""
    from vision_backbones.search.evaluate import ProxyTask

    settings = {
        "target_fraction": target_fraction, "data": data, "image_size": image_size, "threads": threads,
        "step_fraction": step_fraction, "tolerance": tolerance, "pretrain_epochs": pretrain_epochs,
        "proposal_images": proposal_images, "final_epochs": final_epochs, "proxy_image_size": proxy_image_size,
        "repeats": repeats, "seed": seed, "max_steps": max_steps, "clock": clock, "start_overrides": start_overrides,
    }  # fmt: skip
    knobs = check_adapt_arguments(name, target_ms, **settings)  # type: ignore[arg-type]
    identity = _identity(name, target_ms, settings)
    saved = resume_state(Path(out), name, target_ms, **settings) if out is not None and resume else None
    start = time.perf_counter()
    report = on_step or (lambda _: None)
    latency = LatencyModel(name, image_size, threads, repeats, table_path, clock)
    if saved is not None:
        start_ms, target_ms = float(saved["start_ms"]), float(saved["target_ms"])
        overrides: dict[str, Any] = dict(saved["overrides"])
    else:
        overrides = dict(start_overrides or {})
        start_ms = latency.measure(overrides)
        target_ms = min(target_ms, target_fraction * start_ms)
        if start_ms <= target_ms * (1 + tolerance):
            raise ValueError(
                f"{name} already runs in {start_ms:.1f} ms here, within --latency-ms {target_ms:g} (+-{100 * tolerance:.0f} %); nothing to shrink"
            )
        floor_ms = latency.measure(narrowest(name, overrides, knobs), calibrate=False)
        if floor_ms > target_ms * (1 + tolerance):
            raise ValueError(
                f"--latency-ms {target_ms:g} is below the {floor_ms:.1f} ms that {name} takes with every knob at its narrowest here (it starts at {start_ms:.1f} ms)"
            )
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    task = ProxyTask(data=data, image_size=proxy_image_size, threads=threads)

    def proxy_model(arch: dict[str, Any]) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(name, **splits.model_kwargs(), **arch)

    def persist() -> None:
        if out is not None:
            _save_state(
                Path(out),
                {
                    "identity": identity,
                    "start_ms": start_ms,
                    "target_ms": target_ms,
                    "steps": steps,
                    "overrides": overrides,
                    "model": model.state_dict(),
                },
            )

    model = proxy_model(overrides)
    if saved is not None:
        model.load_state_dict(saved["model"])
        steps: list[dict[str, Any]] = list(saved["steps"])
        if out is not None:  # a kill between state.pt and log.jsonl left the log a step behind
            write_jsonl(Path(out) / LOG_FILE, steps)
        for finished in steps:
            report(finished)
    else:
        scores = _train(model, splits, task, seed, pretrain_epochs)
        steps = [
            {
                "step": 0,
                "stage": None,
                "latency_ms": start_ms,
                "val_acc1": scores["val_acc1"],
                "test_acc1": scores["test_acc1"],
                "overrides": {},
            }
        ]
        persist()
        report(steps[0])
    current_ms, current_acc = float(steps[-1]["latency_ms"]), float(steps[-1]["val_acc1"])
    delta = step_fraction * start_ms
    step = int(steps[-1]["step"])
    while current_ms > target_ms * (1 + tolerance) and step < max_steps:
        step += 1
        goal = max(target_ms, current_ms - delta)
        latency.calibration = current_ms / latency.raw_ms(overrides)
        proposals = []
        for knob in knobs:
            width = widest_meeting(latency, name, overrides, knob, goal)
            if width is None:  # the block sum can be far off here: fall back to halving the knob
                possible = candidate_widths(name, overrides, knob)
                if not possible:
                    continue
                half = knob_channels(name, overrides, knob) // 2
                width = max([w for w in possible if w <= half] or possible[:1])
            arch = with_channels(name, overrides, knob, width)
            predicted = latency.predict(arch)
            measured = latency.measure(arch, calibrate=False)  # the proposal's real latency decides
            if measured >= current_ms:
                continue
            candidate = proxy_model(arch)
            inherit_weights(candidate, model)
            result = _train(candidate, splits, task, seed + step, 1, proposal_images, fine_tune=True)
            saved_ms = current_ms - measured
            proposals.append(
                {
                    "knob": knob,
                    "arch": arch,
                    "model": candidate,
                    "val_acc1": result["val_acc1"],
                    "test_acc1": result["test_acc1"],
                    "predicted_ms": predicted,
                    "measured_ms": measured,
                    "score": (result["val_acc1"] - current_acc) / saved_ms,
                    "width": width,
                }
            )
        if not proposals:
            break  # no stage can shrink further: the floor check above makes this rare
        # A coarse stage (16 -> 8 channels) can overshoot the step by far; prefer proposals near the goal.
        floor = target_ms * (1 - tolerance) if goal == target_ms else goal - 2 * delta
        near = [p for p in proposals if p["measured_ms"] >= floor] or proposals
        best = max(near, key=lambda p: p["score"])
        overrides, model = best["arch"], best["model"]
        current_ms = best["measured_ms"]
        current_acc = best["val_acc1"]
        steps.append(
            {
                "step": step,
                "stage": best["knob"].label,
                "width": best["width"],
                "latency_ms": current_ms,
                "predicted_ms": best["predicted_ms"],
                "val_acc1": current_acc,
                "test_acc1": best["test_acc1"],
                "proposals": len(proposals),
                "overrides": overrides,
                "seconds": time.perf_counter() - start,
            }
        )
        persist()
        report(steps[-1])
    final = _train(model, splits, task, seed, final_epochs, fine_tune=True)
    return AdaptResult(
        overrides,
        current_ms,
        start_ms,
        target_ms,
        final["val_acc1"],
        final["test_acc1"],
        steps,
        model,
        time.perf_counter() - start,
    )


def width_baseline(
    name: str,
    target_ms: float,
    *,
    data: str,
    image_size: int,
    threads: int,
    epochs: int,
    proxy_image_size: int = PROXY_IMAGE_SIZE,
    repeats: int = 10,
    seed: int = 0,
    table_path: Path | None = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """The same network thinned uniformly (``scaling.scaled_overrides`` at one width multiplier) to
    ``target_ms`` (bisection on the measured latency), trained from scratch for ``epochs`` on the same split."""
    from vision_backbones.search.evaluate import ProxyTask

    latency = LatencyModel(name, image_size, threads, repeats, table_path, clock)
    low, high = 0.1, 1.0  # bisection on the measured latency (the block sum was far off on this machine)
    measured = math.inf
    for _ in range(7):
        middle = (low + high) / 2
        at_middle = latency.measure(scaled_overrides(name, Multipliers(width=round(middle, 4))), calibrate=False)
        if at_middle <= target_ms:
            low, measured = middle, at_middle
        else:
            high = middle
    arch = scaled_overrides(name, Multipliers(width=round(low, 4)))
    if not math.isfinite(measured):
        measured = latency.measure(arch, calibrate=False)
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    torch.manual_seed(seed)
    model = create_model(name, **splits.model_kwargs(), **arch)
    scores = _train(model, splits, ProxyTask(data=data, image_size=proxy_image_size, threads=threads), seed, epochs)
    return {
        "width": round(low, 4),
        "overrides": arch,
        "latency_ms": measured,
        "val_acc1": scores["val_acc1"],
        "test_acc1": scores["test_acc1"],
    }
