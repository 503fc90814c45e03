"""``backbones adapt NAME --latency-ms T --data mnist|FOLDER``: NetAdapt on this machine.

"NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications" (Yang et al., ECCV
2018, https://arxiv.org/abs/1804.03230), the step MobileNetV3 used after its search. Each step asks
for ``step_fraction`` x the starting latency less; for every stage (an MBConv row, or one entry of
``widths``) it proposes the widest channel count (a multiple of 8) whose predicted latency meets that
step's goal, inherits the current weights (the first channels of every tensor), fine-tunes it
briefly on the proxy task and keeps the proposal with the best accuracy change per millisecond
saved. It stops once the *measured* latency is within ``tolerance`` of the target.

Latency: the search's per-block ``LatencyTable`` (each distinct block timed once on this machine),
calibrated every step by the measured current network, picks each stage's candidate width; every
proposal is then *measured* (``search.latency.measure_latency_ms``: 3 input channels, 1000 classes,
the given image size) and the measurement decides, because on this CPU the block sum was found
30 % off for thinner networks (mobilenet_v2 at width 0.7: 25 ms predicted, 35 ms measured).

Output: ``OUT/arch.json`` (the override dict: ``create_model(NAME, **overrides)`` rebuilds it),
``OUT/weights.safetensors`` (the proxy-trained network, architecture in its metadata:
``create_model(NAME, pretrained=..., in_channels=C, num_classes=10)``), ``OUT/log.jsonl`` (one line
per step) and ``OUT/path.png`` (accuracy vs latency along the path).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vision_backbones.cli import ArgumentParser, int_at_least
from vision_backbones.io import atomic_write
from vision_backbones.layers import make_divisible
from vision_backbones.registry import build_on_meta, create_model, get_entry

MIN_CHANNELS = 8


# ------------------------------------------------------------------------------- width knobs


@dataclass(frozen=True)
class Knob:
    """One stage width NetAdapt may shrink: ``rows[index]`` (MBConv), ``widths[index]``, or a
    scalar field such as ``head_channels`` (``index`` None)."""

    field: str
    index: int | None = None

    @property
    def label(self) -> str:
        return self.field if self.index is None else f"{self.field}[{self.index}]"


def width_knobs(name: str) -> list[Knob]:
    """The per-stage widths of ``name``'s config (MBConv rows, or ``widths``)."""
    config = get_entry(name).config
    fields = {f.name for f in dataclasses.fields(config)}
    head = [Knob("head_channels")] if isinstance(getattr(config, "head_channels", None), int) else []
    if "rows" in fields:
        return [Knob("rows", i) for i in range(len(config.rows))] + head
    if "widths" in fields:
        return [Knob("widths", i) for i in range(len(config.widths))] + head
    raise ValueError(f"model {name!r} (family {get_entry(name).family!r}) has no per-stage widths (rows or widths) for NetAdapt to shrink")


def knob_channels(name: str, overrides: dict[str, Any], knob: Knob) -> int:
    config = dataclasses.replace(get_entry(name).config, **overrides)
    if knob.index is None:
        return getattr(config, knob.field)
    value = getattr(config, knob.field)[knob.index]
    return value.out_channels if knob.field == "rows" else value


def with_channels(name: str, overrides: dict[str, Any], knob: Knob, channels: int) -> dict[str, Any]:
    """``overrides`` with ``knob`` set to ``channels`` (an explicit expanded width shrinks alike)."""
    if knob.index is None:
        return {**overrides, knob.field: channels}
    config = dataclasses.replace(get_entry(name).config, **overrides)
    values = list(getattr(config, knob.field))
    if knob.field == "rows":
        row = values[knob.index]
        expanded = None if row.expanded_channels is None else make_divisible(row.expanded_channels * channels / row.out_channels)
        values[knob.index] = row._replace(out_channels=channels, expanded_channels=expanded)
        return {**overrides, "rows": [dict(r._asdict()) for r in values]}
    values[knob.index] = channels
    return {**overrides, knob.field: tuple(values)}


def inherit_weights(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s tensors into the narrower ``target``: the leading slice of each (the first
    channels of every conv, norm and linear); tensors that grew or changed rank keep their init."""
    own = target.state_dict()
    theirs = source.state_dict()
    for key, tensor in own.items():
        old = theirs.get(key)
        if old is None or old.ndim != tensor.ndim or any(n > o for n, o in zip(tensor.shape, old.shape)):
            continue
        tensor.copy_(old[tuple(slice(0, n) for n in tensor.shape)] if tensor.ndim else old)


# ------------------------------------------------------------------------------- latency


class LatencyModel:
    """Per-block predicted latency, calibrated by measuring whole networks now and then."""

    def __init__(self, name: str, image_size: int, threads: int, repeats: int, table_path: Path | None, clock: str = "wall") -> None:
        from vision_backbones.search.latency import LatencySettings, LatencyTable

        self.name, self.image_size, self.threads, self.repeats, self.clock = name, image_size, threads, repeats, clock
        # kept in memory for the run (table_path None); each distinct block is timed once
        self.table = LatencyTable.load(table_path, LatencySettings(image_size=image_size, threads=threads, repeats=5, warmup=2, clock=clock))
        self.calibration = 1.0

    def predict(self, overrides: dict[str, Any]) -> float:
        return self.calibration * self.table.predict_ms(build_on_meta(self.name, num_classes=1000, **overrides), save=False)

    def measure(self, overrides: dict[str, Any], *, calibrate: bool = True) -> float:
        from vision_backbones.search.latency import measure_latency_ms

        torch.manual_seed(0)
        measured = measure_latency_ms(create_model(self.name, num_classes=1000, **overrides), image_size=self.image_size,
                                      threads=self.threads, repeats=self.repeats, warmup=2, clock=self.clock)
        if calibrate:
            raw = self.table.predict_ms(build_on_meta(self.name, num_classes=1000, **overrides), save=False)
            self.calibration = measured / raw
        return measured


def widest_meeting(latency: LatencyModel, name: str, overrides: dict[str, Any], knob: Knob, goal_ms: float) -> int | None:
    """The largest multiple of 8 below the knob's width whose predicted latency meets ``goal_ms``
    (bisection: latency grows with width), or ``None`` when even 8 channels do not."""
    current = knob_channels(name, overrides, knob)
    widths = list(range(MIN_CHANNELS, current, MIN_CHANNELS))
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


# ------------------------------------------------------------------------------- data


def load_splits(data: str, *, image_size: int, seed: int = 0) -> Any:
    """``"mnist"``/``"digits"`` (the search's proxy splits) or an image folder (one subfolder per
    class), cut 60/20/20 stratified, at ``image_size`` pixels."""
    from vision_backbones.search.data import DATASETS, ProxySplits

    if data in DATASETS:
        from vision_backbones.search.evaluate import ProxyTask, task_splits

        return task_splits(ProxyTask(data=data, image_size=image_size, data_seed=seed))
    folder = Path(data)
    if not folder.is_dir():
        raise ValueError(f"--data {data!r} is neither one of {', '.join(DATASETS)} nor an image folder")
    import numpy as np
    from sklearn.model_selection import train_test_split
    from torchvision import datasets, transforms

    dataset = datasets.ImageFolder(folder, transform=transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()]))
    if len(dataset.classes) < 2 or len(dataset) < 10:
        raise ValueError(f"--data {data!r} has {len(dataset.classes)} class folders and {len(dataset)} images; expected >= 2 classes and >= 10 images")
    images = torch.stack([image for image, _ in dataset])
    labels = torch.tensor(dataset.targets)
    everything = np.arange(len(labels))
    rest, test = train_test_split(everything, test_size=0.2, stratify=labels.numpy(), random_state=seed)
    train, val = train_test_split(rest, test_size=0.25, stratify=labels.numpy()[rest], random_state=seed)
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std

    def split(index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.sort(index))
        return images[index].contiguous(), labels[index].contiguous()

    return ProxySplits(name=str(folder), train=split(train), val=split(val), test=split(test), num_classes=len(dataset.classes))


# ------------------------------------------------------------------------------- the loop


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


def _train(model: nn.Module, splits: Any, task: Any, seed: int, epochs: int, train_images: int | None = None, *, fine_tune: bool = False) -> dict[str, Any]:
    from vision_backbones.search.evaluate import evaluate_model

    lr = task.lr * (FINE_TUNE_LR_FACTOR if fine_tune else 1.0)
    step_task = dataclasses.replace(task, epochs=max(1, epochs), train_images=train_images, lr=lr)
    subset = splits
    if train_images is not None:
        subset = dataclasses.replace(splits, train=(splits.train[0][:train_images], splits.train[1][:train_images]))
    return evaluate_model(model, step_task, seed=seed, splits=subset, train=epochs > 0)


def adapt(
    name: str, target_ms: float, *, data: str = "mnist", image_size: int = 224, threads: int = 1, step_fraction: float = 0.02,
    tolerance: float = 0.05, pretrain_epochs: int = 3, proposal_images: int = 1000, final_epochs: int = 3, proxy_image_size: int = 32,
    repeats: int = 10, seed: int = 0, table_path: Path | None = None, max_steps: int = 60, clock: str = "wall",
    target_fraction: float = 1.0, start_overrides: dict[str, Any] | None = None, on_step: Callable[[dict[str, Any]], None] | None = None,
) -> AdaptResult:
    """Shrink ``name`` until its measured latency is within ``tolerance`` of the target: ``target_ms``,
    or ``target_fraction`` of the measured starting latency when that is lower. ``start_overrides``:
    the architecture to start from (default: the registered one)."""
    from vision_backbones.search.evaluate import ProxyTask

    knobs = width_knobs(name)
    if not target_ms > 0 or math.isnan(target_ms) or (math.isinf(target_ms) and target_fraction >= 1):
        raise ValueError(f"--latency-ms must be a positive number of milliseconds, got {target_ms}")
    if not 0 < target_fraction <= 1:
        raise ValueError(f"--latency-fraction must be in (0, 1], got {target_fraction}")
    if not 0 < step_fraction < 1:
        raise ValueError(f"--step-fraction must be in (0, 1), got {step_fraction}")
    start = time.perf_counter()
    report = on_step or (lambda _: None)
    latency = LatencyModel(name, image_size, threads, repeats, table_path, clock)
    overrides: dict[str, Any] = dict(start_overrides or {})
    start_ms = latency.measure(overrides)
    target_ms = min(target_ms, target_fraction * start_ms)
    if start_ms <= target_ms * (1 + tolerance):
        raise ValueError(f"{name} already runs in {start_ms:.1f} ms here, within --latency-ms {target_ms:g} (+-{100 * tolerance:.0f} %); nothing to shrink")
    floor_overrides = overrides
    for knob in knobs:
        floor_overrides = with_channels(name, floor_overrides, knob, MIN_CHANNELS)
    floor_ms = latency.measure(floor_overrides, calibrate=False)
    if floor_ms > target_ms * (1 + tolerance):
        raise ValueError(f"--latency-ms {target_ms:g} is below the {floor_ms:.1f} ms that {name} takes with every stage at {MIN_CHANNELS} channels here (it starts at {start_ms:.1f} ms)")
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    channels = int(splits.train[0].shape[1])
    task = ProxyTask(data="mnist", image_size=proxy_image_size, threads=threads)

    def proxy_model(arch: dict[str, Any]) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(name, num_classes=splits.num_classes, in_channels=channels, **arch)

    model = proxy_model(overrides)
    scores = _train(model, splits, task, seed, pretrain_epochs)
    current_ms, current_acc = start_ms, scores["val_acc1"]
    steps = [{"step": 0, "stage": None, "latency_ms": start_ms, "val_acc1": current_acc, "test_acc1": scores["test_acc1"], "overrides": {}}]
    report(steps[0])
    delta = step_fraction * start_ms
    step = 0
    while current_ms > target_ms * (1 + tolerance) and step < max_steps:
        step += 1
        goal = max(target_ms, current_ms - delta)
        latency.calibration = current_ms / latency.table.predict_ms(build_on_meta(name, num_classes=1000, **overrides), save=False)
        proposals = []
        for knob in knobs:
            width = widest_meeting(latency, name, overrides, knob, goal)
            if width is None:  # the block sum can be far off here: fall back to halving the stage
                current_width = knob_channels(name, overrides, knob)
                width = max(MIN_CHANNELS, current_width // 2 // MIN_CHANNELS * MIN_CHANNELS)
                if width >= current_width:
                    continue
            arch = with_channels(name, overrides, knob, width)
            predicted = latency.predict(arch)
            measured = latency.measure(arch, calibrate=False)  # the proposal's real latency decides
            if measured >= current_ms:
                continue
            candidate = proxy_model(arch)
            inherit_weights(candidate, model)
            result = _train(candidate, splits, task, seed + step, 1, proposal_images, fine_tune=True)
            saved = current_ms - measured
            proposals.append({"knob": knob, "arch": arch, "model": candidate, "val_acc1": result["val_acc1"], "test_acc1": result["test_acc1"],
                              "predicted_ms": predicted, "measured_ms": measured, "score": (result["val_acc1"] - current_acc) / saved, "width": width})
        if not proposals:
            break  # no stage can shrink further: the floor check above makes this rare
        # A coarse stage (16 -> 8 channels) can overshoot the step by far; prefer proposals near the goal.
        floor = target_ms * (1 - tolerance) if goal == target_ms else goal - 2 * delta
        near = [p for p in proposals if p["measured_ms"] >= floor] or proposals
        best = max(near, key=lambda p: p["score"])
        overrides, model = best["arch"], best["model"]
        current_ms = best["measured_ms"]
        current_acc = best["val_acc1"]
        steps.append({"step": step, "stage": best["knob"].label, "width": best["width"], "latency_ms": current_ms, "predicted_ms": best["predicted_ms"],
                      "val_acc1": current_acc, "test_acc1": best["test_acc1"], "proposals": len(proposals), "overrides": overrides,
                      "seconds": time.perf_counter() - start})
        report(steps[-1])
    final = _train(model, splits, task, seed, final_epochs, fine_tune=True)
    return AdaptResult(overrides, current_ms, start_ms, target_ms, final["val_acc1"], final["test_acc1"], steps, model, time.perf_counter() - start)


def width_baseline(name: str, target_ms: float, *, data: str, image_size: int, threads: int, epochs: int, proxy_image_size: int = 32,
                   repeats: int = 10, seed: int = 0, table_path: Path | None = None, clock: str = "wall") -> dict[str, Any]:
    """The same network thinned by one ``width_multiplier`` to ``target_ms`` (bisection on predicted
    latency, then measured), trained from scratch for ``epochs`` on the same split."""
    from vision_backbones.search.evaluate import ProxyTask

    latency = LatencyModel(name, image_size, threads, repeats, table_path, clock)
    base = get_entry(name).config.width_multiplier
    low, high = 0.1, 1.0  # bisection on the measured latency (the block sum was far off on this machine)
    measured = math.inf
    for _ in range(7):
        middle = (low + high) / 2
        at_middle = latency.measure({"width_multiplier": round(base * middle, 4)}, calibrate=False)
        if at_middle <= target_ms:
            low, measured = middle, at_middle
        else:
            high = middle
    arch = {"width_multiplier": round(base * low, 4)}
    if not math.isfinite(measured):
        measured = latency.measure(arch, calibrate=False)
    splits = load_splits(data, image_size=proxy_image_size, seed=seed)
    torch.manual_seed(seed)
    model = create_model(name, num_classes=splits.num_classes, in_channels=int(splits.train[0].shape[1]), **arch)
    scores = _train(model, splits, ProxyTask(data="mnist", image_size=proxy_image_size, threads=threads), seed, epochs)
    return {"overrides": arch, "latency_ms": measured, "val_acc1": scores["val_acc1"], "test_acc1": scores["test_acc1"]}


def write_plot(steps: Sequence[dict[str, Any]], target_ms: float, baseline: dict[str, Any] | None, path: Path, title: str,
               final: tuple[float, float] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    ax.plot([s["latency_ms"] for s in steps], [s["val_acc1"] for s in steps], "-o", color="tab:blue", label="NetAdapt path (val, after each step's fine-tune)")
    for s in steps[1:]:
        ax.annotate(s["stage"], (s["latency_ms"], s["val_acc1"]), xytext=(4, 4), textcoords="offset points", fontsize=7)
    if final is not None:
        ax.scatter([final[0]], [final[1]], marker="*", s=160, color="tab:blue", label="NetAdapt after the final fine-tune (val)")
    ax.axvline(target_ms, color="tab:red", lw=1, label=f"target {target_ms:.1f} ms")
    if baseline is not None:
        ax.scatter([baseline["latency_ms"]], [baseline["val_acc1"]], marker="s", s=80, color="tab:orange",
                   label=f"width_multiplier {baseline['overrides']['width_multiplier']} (val)")
    ax.invert_xaxis()
    ax.set_xlabel("measured latency, ms (batch 1, 3x224 input, 1000 classes)")
    ax.set_ylabel("proxy validation top-1, %")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="backbones adapt", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a registered model with MBConv rows or per-stage widths (mobilenet_v2, mobilenet_v3_large, resnet18, ...)")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--latency-ms", type=float, help="target latency on this machine")
    goal.add_argument("--latency-fraction", type=float, help="target as a share of the measured starting latency (e.g. 0.6)")
    parser.add_argument("--data", default="mnist", help="mnist, digits, or an image folder with one subfolder per class")
    parser.add_argument("--out", type=Path, required=True, help="output folder (arch.json, weights.safetensors, log.jsonl, path.png)")
    parser.add_argument("--image-size", type=int_at_least(8), default=224, help="input size the latency is measured at")
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--step-fraction", type=float, default=0.02, help="latency removed per step, share of the start (NetAdapt: ~0.01-0.02)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="stop within this share of the target")
    parser.add_argument("--pretrain-epochs", type=int_at_least(0), default=3)
    parser.add_argument("--final-epochs", type=int_at_least(0), default=3)
    parser.add_argument("--proposal-images", type=int_at_least(64), default=1000, help="training images of each proposal's fine-tune (one epoch)")
    parser.add_argument("--repeats", type=int_at_least(1), default=10, help="timed calls per latency measurement")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (with --threads 1: steady on a machine other jobs share)")
    parser.add_argument("--baseline", action="store_true", help="also train the width-multiplier network of the same latency")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing output folder's files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vision_backbones.io import check_overwrite
    from vision_backbones.weights import save_weights

    args = build_parser().parse_args(argv)
    get_entry(args.name)
    width_knobs(args.name)
    out: Path = args.out
    for file in ("arch.json", "weights.safetensors", "log.jsonl", "path.png"):
        check_overwrite(out / file, force=args.force)
    out.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []
    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)
    table_path = None  # the block table lives in memory for the run
    with progress:
        goal_text = f"{args.latency_ms:g} ms" if args.latency_ms is not None else f"{args.latency_fraction:g} x start"
        bar = progress.add_task(f"NetAdapt {args.name} -> {goal_text}", total=1.0, status="measuring")

        def on_step(step: dict[str, Any]) -> None:
            log_lines.append(json.dumps(step))
            text = "\n".join(log_lines) + "\n"
            atomic_write(out / "log.jsonl", lambda tmp: Path(tmp).write_text(text))
            first = json.loads(log_lines[0])["latency_ms"]
            target = args.latency_ms if args.latency_ms is not None else args.latency_fraction * first
            done = (first - step["latency_ms"]) / max(first - target, 1e-9)
            progress.update(bar, completed=min(1.0, max(0.0, done)), status=f"step {step['step']}: {step['latency_ms']:.1f} ms, val {step['val_acc1']:.1f} %")
            console.print(f"step {step['step']}: {step['stage'] or 'start'}" + (f" -> {step['width']} ch" if step.get("width") else "")
                          + f", {step['latency_ms']:.2f} ms, val {step['val_acc1']:.2f} %")

        result = adapt(args.name, args.latency_ms if args.latency_ms is not None else math.inf, target_fraction=args.latency_fraction or 1.0, data=args.data, image_size=args.image_size, threads=args.threads, step_fraction=args.step_fraction,
                       tolerance=args.tolerance, pretrain_epochs=args.pretrain_epochs, final_epochs=args.final_epochs,
                       proposal_images=args.proposal_images, repeats=args.repeats, seed=args.seed, table_path=table_path, clock=args.clock, on_step=on_step)
        baseline = None
        if args.baseline:
            progress.update(bar, status="width-multiplier baseline")
            epochs = args.pretrain_epochs + args.final_epochs + len(result.steps) - 1
            baseline = width_baseline(args.name, result.latency_ms, data=args.data, image_size=args.image_size, threads=args.threads,
                                      epochs=epochs, repeats=args.repeats, seed=args.seed, table_path=table_path, clock=args.clock)
    arch = {"base": args.name, "overrides": result.overrides, "latency_ms": result.latency_ms, "start_latency_ms": result.start_latency_ms,
            "target_ms": result.target_ms, "val_acc1": result.val_acc1, "test_acc1": result.test_acc1, "seconds": result.seconds,
            "image_size": args.image_size, "threads": args.threads, "clock": args.clock, "baseline": baseline}
    text = json.dumps(arch, indent=1) + "\n"
    atomic_write(out / "arch.json", lambda tmp: Path(tmp).write_text(text))
    save_weights(result.model.state_dict(), out / "weights.safetensors", model_name=args.name, overrides=result.overrides)
    write_plot(result.steps, result.target_ms, baseline, out / "path.png", f"NetAdapt {args.name} on this machine",
               final=(result.latency_ms, result.val_acc1))
    off = 100 * (result.latency_ms / result.target_ms - 1)
    print(f"{args.name}: {result.start_latency_ms:.2f} -> {result.latency_ms:.2f} ms (target {result.target_ms:.2f}, {off:+.1f} %) in {len(result.steps) - 1} steps, "
          f"{result.seconds:.0f} s; proxy test top-1 {result.test_acc1:.2f} % (val {result.val_acc1:.2f} %)")
    if baseline:
        print(f"width-multiplier baseline {baseline['overrides']}: {baseline['latency_ms']:.2f} ms, proxy test top-1 {baseline['test_acc1']:.2f} % (val {baseline['val_acc1']:.2f} %)")
    if abs(off) > 100 * args.tolerance:
        print(f"note: ended {off:+.1f} % from the target, outside +-{100 * args.tolerance:.0f} % (no stage could shrink further, or measurement noise)")
    print(f"wrote {out}/arch.json, weights.safetensors, log.jsonl, path.png")
    return 0
