"""NetAdapt on this machine: shrink a model's channels until it meets a latency target.

"NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications" (Yang et al., ECCV
2018, https://arxiv.org/abs/1804.03230), the step MobileNetV3 used after its search. Step ``t`` asks
for ``step_fraction x step_decay^(t-1)`` x the starting latency less (the reference implementation's
0.025 and 0.96); for every knob (one channel entry the family declares: ``widths[i]``,
``rows[i].out_channels``, ``head_channels``, see :mod:`.knobs`) it proposes the widest width whose
*predicted* latency meets that step's goal, inherits the current weights (in each coupled channel
group the filters of largest L2 norm, :mod:`.inherit`), fine-tunes it briefly on the proxy task
(short-term, ``proposal_images``) and keeps the proposal with the best accuracy change per
millisecond saved. After the last step the kept network is fine-tuned longer (``final_epochs``).

Latency (:mod:`.calibrated_latency`): the per-block table, or any ``predictor`` with
``predict_ms(model_on_meta)``, scaled by the last measured whole network, picks the widths and the
proposal; the whole network is *measured* (``search.latency.measure_latency_ms``: 3 input channels,
1000 classes, the given image size) every ``confirm_every`` steps, whenever the prediction says the
target is met, and at the end, and each measurement recalibrates the prediction. The run stops once
the *measured* latency is within ``tolerance`` of the target. Every step's log holds the predicted and
(where measured) the measured figure. The command line is ``backbones adapt`` (:mod:`vision_backbones.cli.adapt`).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vision_backbones.budget.calibrated_latency import LatencyModel, LatencyPredictor, widest_meeting
from vision_backbones.budget.inherit import channel_groups, check_torch_pruning, inherit_weights
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
    closing_start_ms: float  # the start and the end measured again together after the last step
    closing_ms: float


FINE_TUNE_LR_FACTOR = 0.2  # inherited weights: the proxy task's one-cycle peak (lr 0.01) undoes them in 15 steps
PROXY_IMAGE_SIZE = 32  # the proxy images of every fine-tune (the latency is measured at --image-size)
SECOND_SEED = 7919  # with rank_seeds=2 each proposal is also fine-tuned with seed + step + this


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
    step_fraction: float = 0.025,
    step_decay: float = 0.96,
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
    confirm_every: int = 3,
    rank_seeds: int = 1,
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
    check_float("--step-decay (step_decay)", step_decay, min=0.0, max=1.0, min_open=True)
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
    check_int("--confirm-every (confirm_every)", confirm_every, min=1)
    check_choice("--rank-seeds (rank_seeds)", rank_seeds, (1, 2))
    check_choice("--clock (clock)", clock, ("wall", "cpu"))
    check_proxy_data(data)
    check_torch_pruning()  # the weight inheritance's dependency: one line now, not after the pretraining
    if start_overrides is not None:
        if not isinstance(start_overrides, dict):
            raise ValueError(f"--start (start_overrides) must be a dict of overrides, got {start_overrides!r}")
        knob_channels(name, dict(start_overrides), knobs[0])  # unknown or mistyped overrides: the registry's one line
    return knobs


def _identity(
    name: str, target_ms: float, settings: dict[str, Any], predictor: LatencyPredictor | None = None
) -> dict[str, Any]:
    """What a resumed run must share with the one it continues (``max_steps`` may grow); defaults filled
    in, the predictor by its class name."""
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(check_adapt_arguments).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    merged = {**defaults, **settings}
    kept = {k: v for k, v in merged.items() if k != "max_steps"}
    predictor_name = type(predictor).__name__ if predictor is not None else None
    return jsonable({"name": name, "target_ms": target_ms, **kept, "predictor": predictor_name})


def resume_state(
    out: Path, name: str, target_ms: float, predictor: LatencyPredictor | None = None, **settings: Any
) -> dict[str, Any] | None:
    """The saved state of a killed run with these settings in ``out`` (None when there is none); a corrupt
    state or one of other settings is one ``ValueError`` naming the file and what to do."""
    path = Path(out) / STATE_FILE
    if not path.exists():
        return None
    return _load_state(path, _identity(name, target_ms, settings, predictor))


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


def step_goal_ms(
    current_ms: float, start_ms: float, target_ms: float, step: int, fraction: float, decay: float
) -> float:
    """Step ``step``'s latency goal (NetAdapt's schedule): ``fraction x decay^(step-1)`` x the starting
    latency below the current one, never below the target."""
    return max(target_ms, current_ms - fraction * start_ms * decay ** (step - 1))


def rank_correlation(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two accuracy lists (``scipy.stats.spearmanr``); ``None`` where it
    is undefined (fewer than two proposals, or one list constant)."""
    from scipy.stats import spearmanr

    if len(first) != len(second):
        raise ValueError(f"need two accuracy lists of one length, got {len(first)} and {len(second)}")
    if len(first) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant list: scipy warns and returns nan
        value = float(spearmanr(first, second)[0])
    return None if math.isnan(value) else value


def _proposals(
    latency: LatencyModel, name: str, overrides: dict[str, Any], knobs: list[Knob], goal_ms: float, current_ms: float
) -> list[dict[str, Any]]:
    """Each knob's proposal: its widest width whose predicted latency meets ``goal_ms``; when no knob
    can meet it, each knob at its narrowest (``short``: the step then saves less than asked)."""
    chosen = [(knob, widest_meeting(latency, name, overrides, knob, goal_ms)) for knob in knobs]
    found = [(knob, width) for knob, width in chosen if width is not None]
    short = not found
    if short:
        found = [(k, ws[0]) for k in knobs if (ws := candidate_widths(name, overrides, k))]
    proposals = []
    for knob, width in found:
        arch = with_channels(name, overrides, knob, width)
        predicted = latency.predict(arch)
        if predicted < current_ms:
            proposals.append(
                {"knob": knob, "width": width, "arch": arch, "predicted_ms": predicted, "short": short}
            )  # fmt: skip
    return proposals


def _choose(
    proposals: list[dict[str, Any]], current_ms: float, current_acc: float, goal_ms: float, target_ms: float,
    tolerance: float, delta_ms: float,
) -> dict[str, Any]:  # fmt: skip
    """The proposal of best accuracy change per predicted millisecond saved, among those near the goal
    (a coarse knob, 16 -> 8 channels, can overshoot the step by far)."""
    for proposal in proposals:
        proposal["score"] = (proposal["val_acc1"] - current_acc) / (current_ms - proposal["predicted_ms"])
    floor = target_ms * (1 - tolerance) if goal_ms == target_ms else goal_ms - 2 * delta_ms
    near = [p for p in proposals if p["predicted_ms"] >= floor] or proposals
    return max(near, key=lambda p: p["score"])


def adapt(
    name: str,
    target_ms: float,
    *,
    data: str = "mnist",
    image_size: int = 224,
    threads: int = 1,
    step_fraction: float = 0.025,
    step_decay: float = 0.96,
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
    confirm_every: int = 3,
    rank_seeds: int = 1,
    predictor: LatencyPredictor | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    out: Path | None = None,
    resume: bool = True,
) -> AdaptResult:
    """Shrink ``name`` until its measured latency is within ``tolerance`` of the target: ``target_ms``,
    or ``target_fraction`` of the measured starting latency when that is lower. ``start_overrides``:
    the architecture to start from (default: the registered one).

    ``step_fraction`` (0.025) and ``step_decay`` (0.96): step ``t`` asks for ``step_fraction x
    step_decay^(t-1)`` x the starting latency less. ``proposal_images`` (default 1000): each proposal's
    short-term fine-tune is one epoch over that many proxy training images, enough on MNIST-like data
    for the proposals' accuracies to rank them (``rank_seeds=2`` fine-tunes each proposal with a second
    seed too and logs Spearman's correlation of the two rankings as ``rank_spearman``; the first seed's
    accuracies still choose). ``final_epochs``: the long-term fine-tune of the result.

    ``predictor``: an object with ``predict_ms(model_on_meta) -> float`` that replaces the per-block
    table; either way the prediction is calibrated by the last measured whole network, which is
    measured every ``confirm_every`` steps, whenever the prediction meets the target, and at the end.
    Every measurement passes the ruler's quiet gate (``measure.ruler.QUIET_GATE``). A step whose
    measured network lands under the target's band (the calibration moved between networks) is taken
    once more with the calibration that measurement gave, and the take that lands nearer the target is
    kept (``redone`` in its log line). After the last step the start and the end are measured again
    together (``closing_start_ms``, ``closing_ms``): one ruler, one moment.

    ``out``: after every finished step, ``out/state.pt`` (the steps and the current proxy weights,
    written atomically) and ``out/log.jsonl``; with ``resume`` a run with the same settings continues
    from ``state.pt`` after a kill, no finished step lost or repeated. Nothing is written before the
    first step is done (a refused run leaves no folder)."""
    from vision_backbones.search.evaluate import ProxyTask

    settings = {
        "target_fraction": target_fraction, "data": data, "image_size": image_size, "threads": threads,
        "step_fraction": step_fraction, "step_decay": step_decay, "tolerance": tolerance,
        "pretrain_epochs": pretrain_epochs, "proposal_images": proposal_images, "final_epochs": final_epochs,
        "proxy_image_size": proxy_image_size, "repeats": repeats, "seed": seed, "max_steps": max_steps,
        "clock": clock, "start_overrides": start_overrides, "confirm_every": confirm_every, "rank_seeds": rank_seeds,
    }  # fmt: skip
    knobs = check_adapt_arguments(name, target_ms, **settings)  # type: ignore[arg-type]
    identity = _identity(name, target_ms, settings, predictor)
    saved = resume_state(Path(out), name, target_ms, predictor, **settings) if out is not None and resume else None
    start = time.perf_counter()
    report = on_step or (lambda _: None)
    latency = LatencyModel(name, image_size, threads, repeats, table_path, clock, predictor)
    if saved is not None:
        start_ms, target_ms = float(saved["start_ms"]), float(saved["target_ms"])
        overrides: dict[str, Any] = dict(saved["overrides"])
        latency.calibration = float(saved["steps"][-1]["calibration"])
    else:
        overrides = dict(start_overrides or {})
        start_ms = latency.measure(overrides)
        target_ms = min(target_ms, target_fraction * start_ms)
        _check_reachable(latency, name, overrides, knobs, start_ms, target_ms, tolerance)
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    task = ProxyTask(data=data, image_size=proxy_image_size, threads=threads)

    def proxy_model(arch: dict[str, Any]) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(name, **splits.model_kwargs(), **arch)

    def persist() -> None:
        if out is not None:
            state = {"identity": identity, "start_ms": start_ms, "target_ms": target_ms, "steps": steps,
                     "overrides": overrides, "model": model.state_dict()}  # fmt: skip
            _save_state(Path(out), state)

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
                "step": 0, "stage": None, "latency_ms": start_ms, "predicted_ms": latency.predict(overrides),
                "measured_ms": start_ms, "calibration": latency.calibration, "val_acc1": scores["val_acc1"],
                "test_acc1": scores["test_acc1"], "overrides": {},
            }
        ]  # fmt: skip
        persist()
        report(steps[0])
    limit = target_ms * (1 + tolerance)
    current_ms, current_acc = float(steps[-1]["latency_ms"]), float(steps[-1]["val_acc1"])
    step = int(steps[-1]["step"])
    floor = target_ms * (1 - tolerance)

    def propose(goal: float) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The step's proposals toward ``goal``, each short-term fine-tuned, and the one chosen."""
        proposals = _proposals(latency, name, overrides, knobs, goal, current_ms)
        if not proposals:
            return None  # no knob can shrink further: the floor check above makes this rare
        groups = channel_groups(model)  # the current network's channel groups, once for all proposals
        for proposal in proposals:
            candidate = proxy_model(proposal["arch"])
            proposal["fallbacks"] = len(inherit_weights(candidate, model, groups).fallbacks)
            second = copy.deepcopy(candidate) if rank_seeds == 2 else None
            result = _train(candidate, splits, task, seed + step, 1, proposal_images, fine_tune=True)
            proposal.update(model=candidate, val_acc1=result["val_acc1"], test_acc1=result["test_acc1"])
            if second is not None:
                again = _train(second, splits, task, seed + step + SECOND_SEED, 1, proposal_images, fine_tune=True)
                proposal["val_acc1_second_seed"] = again["val_acc1"]
        return _choose(proposals, current_ms, current_acc, goal, target_ms, tolerance, current_ms - goal), proposals

    while current_ms > limit and step < max_steps:
        step += 1
        goal = step_goal_ms(current_ms, start_ms, target_ms, step, step_fraction, step_decay)
        chosen = propose(goal)
        if chosen is None:
            break
        best, proposals = chosen
        confirm = step % confirm_every == 0 or best["predicted_ms"] <= limit or step == max_steps
        measured = latency.measure(best["arch"]) if confirm else None  # recalibrates the prediction
        redone = False
        if measured is not None and measured < floor:  # overshot the target's band: the calibration moved
            kept_calibration = latency.calibration
            again = propose(goal)  # the step once more, its proposals predicted by the new calibration
            if again is not None and again[0]["arch"] != best["arch"]:
                measured_again = latency.measure(again[0]["arch"])
                if abs(measured_again / target_ms - 1) < abs(measured / target_ms - 1):
                    (best, proposals), measured, redone = again, measured_again, True
                else:
                    latency.calibration = kept_calibration
        overrides, model, current_acc = best["arch"], best["model"], best["val_acc1"]
        current_ms = measured if measured is not None else best["predicted_ms"]
        steps.append(_step_record(step, goal, best, proposals, measured, latency.calibration, rank_seeds, start))
        steps[-1]["redone"] = redone
        persist()
        report(steps[-1])
    if steps[-1]["measured_ms"] is None:  # stopped between confirmations: the end is measured too
        current_ms = steps[-1]["measured_ms"] = steps[-1]["latency_ms"] = latency.measure(overrides)
        steps[-1]["calibration"] = latency.calibration
        persist()
    # the start once more beside the end (one ruler, one moment): a slow patch at the first measurement
    # would otherwise make the start, and the target drawn from it, read high
    closing_start_ms = latency.measure(dict(start_overrides or {}), calibrate=False)
    closing_ms = latency.measure(overrides, calibrate=False)
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
        closing_start_ms,
        closing_ms,
    )


def _check_reachable(
    latency: LatencyModel, name: str, overrides: dict[str, Any], knobs: list[Knob], start_ms: float, target_ms: float,
    tolerance: float,
) -> None:  # fmt: skip
    """One line when there is nothing to shrink, or when the target is below the measured latency of
    every knob at its narrowest (the smallest this run can reach)."""
    if start_ms <= target_ms * (1 + tolerance):
        raise ValueError(
            f"{name} already runs in {start_ms:.1f} ms here, within --latency-ms {target_ms:g} (+-{100 * tolerance:.0f} %); nothing to shrink"
        )
    floor_ms = latency.measure(narrowest(name, overrides, knobs), calibrate=False)
    if floor_ms > target_ms * (1 + tolerance):
        lowest = floor_ms / (1 + tolerance)
        raise ValueError(
            f"the target {target_ms:.4g} ms is below {floor_ms:.4g} ms, the smallest latency {name} reaches here (every "
            f"knob at its narrowest; it starts at {start_ms:.4g} ms); expected a target >= {lowest:.4g} ms "
            f"(--latency-ms, or --latency-fraction >= {lowest / start_ms:.3g})"
        )


def _step_record(
    step: int, goal: float, best: dict[str, Any], proposals: list[dict[str, Any]], measured: float | None,
    calibration: float, rank_seeds: int, start: float,
) -> dict[str, Any]:  # fmt: skip
    """One line of ``log.jsonl``: the chosen proposal, its predicted and (when confirmed) measured latency,
    every proposal's figures and, with ``rank_seeds=2``, the rank correlation of the two seeds."""
    record = {
        "step": step,
        "stage": best["knob"].label,
        "width": best["width"],
        "goal_ms": goal,
        "latency_ms": measured if measured is not None else best["predicted_ms"],
        "predicted_ms": best["predicted_ms"],
        "measured_ms": measured,
        "calibration": calibration,
        "val_acc1": best["val_acc1"],
        "test_acc1": best["test_acc1"],
        "proposals": len(proposals),
        "short": best["short"],
        "inherit_fallbacks": best["fallbacks"],
        "candidates": [
            {
                "stage": p["knob"].label,
                "width": p["width"],
                "predicted_ms": p["predicted_ms"],
                "val_acc1": p["val_acc1"],
                "inherit_fallbacks": p["fallbacks"],
            }
            for p in proposals
        ],
        "overrides": best["arch"],
        "seconds": time.perf_counter() - start,
    }
    if rank_seeds == 2:
        record["rank_spearman"] = rank_correlation(
            [p["val_acc1"] for p in proposals], [p["val_acc1_second_seed"] for p in proposals]
        )
    return record


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
    scores = train_from_scratch(
        name, arch, data=data, epochs=epochs, seed=seed, threads=threads, proxy_image_size=proxy_image_size
    )
    return {"width": round(low, 4), "overrides": arch, "latency_ms": measured, **scores}


def train_from_scratch(
    name: str,
    overrides: dict[str, Any],
    *,
    data: str,
    epochs: int,
    seed: int = 0,
    threads: int = 1,
    proxy_image_size: int = PROXY_IMAGE_SIZE,
) -> dict[str, float]:
    """``create_model(name, **overrides)`` trained from scratch for ``epochs`` on the proxy split of
    ``seed`` (the split and the initialisation NetAdapt's run of that seed uses): val and test top-1."""
    from vision_backbones.search.evaluate import ProxyTask

    check_proxy_data(data)
    check_int("epochs", epochs, min=1)
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    torch.manual_seed(seed)
    model = create_model(name, **splits.model_kwargs(), **overrides)
    scores = _train(model, splits, ProxyTask(data=data, image_size=proxy_image_size, threads=threads), seed, epochs)
    return {"val_acc1": float(scores["val_acc1"]), "test_acc1": float(scores["test_acc1"])}
