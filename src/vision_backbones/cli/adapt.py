"""``backbones adapt NAME --latency-ms T --data mnist|digits|FOLDER|SHARDS``: NetAdapt on this machine.

Shrinks the channels a family declares (:mod:`vision_backbones.budget.netadapt`) until the measured
latency meets the target. Output: ``OUT/arch.json`` (the override dict: ``create_model(NAME,
**overrides)`` rebuilds it), ``OUT/weights.safetensors`` (the proxy-trained network, architecture in
its metadata: ``create_model(NAME, pretrained=..., in_channels=C, num_classes=K)``, C and K the data's), ``OUT/log.jsonl``
(one line per step) and ``OUT/path.png`` (accuracy vs latency along the path). While it runs,
``OUT/state.pt`` holds every finished step and the current weights (written atomically): the same
command after a kill resumes from it, no finished step lost or repeated; ``--force`` starts over.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.budget.knobs import channel_knobs
from vision_backbones.cli import ArgumentParser, int_at_least
from vision_backbones.io import check_output_folder, check_overwrite, json_text, lists_to_tuples, read_json, write_json


def start_overrides(text: str | None) -> dict[str, Any]:
    """``--start``: a JSON object of overrides, or a JSON file holding one (or one under ``"overrides"``)."""
    if text is None:
        return {}
    if text.lstrip().startswith("{"):
        try:
            value = lists_to_tuples(json.loads(text))
        except json.JSONDecodeError as error:
            raise ValueError(f"--start {text!r} is not a valid JSON object ({error.msg} at char {error.pos})") from None
    else:
        value = read_json(text, tuples=True)
        value = value.get("overrides", value) if isinstance(value, dict) else value
    if not isinstance(value, dict):
        raise ValueError(f"--start must give a JSON object of overrides, got {type(value).__name__}")
    return value


def build_parser() -> ArgumentParser:
    from vision_backbones.search.data import DATA_HELP

    parser = ArgumentParser(prog="backbones adapt", description=__doc__.splitlines()[0])
    parser.add_argument(
        "name",
        help="a registered model whose family declares channel fields (mobilenet_v2, resnet18, vovnet39, shufflenet_v2_x1_0, ...)",
    )
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--latency-ms", type=float, help="target latency on this machine")
    goal.add_argument(
        "--latency-fraction", type=float, help="target as a share of the measured starting latency (e.g. 0.6)"
    )
    parser.add_argument(
        "--data",
        default="mnist",
        help=DATA_HELP,
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (arch.json, weights.safetensors, log.jsonl, path.png)"
    )
    parser.add_argument("--image-size", type=int_at_least(8), default=224, help="input size the latency is measured at")
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument(
        "--step-fraction",
        type=float,
        default=0.025,
        help="latency removed by the first step, share of the start (NetAdapt's reference code: 0.025)",
    )
    parser.add_argument(
        "--step-decay",
        type=float,
        default=0.96,
        help="each step removes this times the previous step's share (NetAdapt's reference code: 0.96)",
    )
    parser.add_argument(
        "--confirm-every",
        type=int,
        default=3,
        help="measure the whole network every this many steps (and when the prediction meets the target, and at the end); "
        "the per-block prediction, calibrated by the last measurement, chooses in between",
    )
    parser.add_argument(
        "--rank-seeds",
        type=int,
        default=1,
        help="2: also fine-tune every proposal with a second seed and log the Spearman correlation of the two rankings",
    )
    parser.add_argument(
        "--predictor",
        choices=("blocks", "kernels"),
        default="blocks",
        help="what chooses between measurements: the per-block table (timed as the run goes) or the kernel-level "
        "latency predictor of this machine (measure.predictor; built once into --predictor-cache, ~25 min)",
    )
    parser.add_argument("--predictor-cache", type=Path, default=None, help="the kernel predictor's cache file")
    parser.add_argument("--tolerance", type=float, default=0.05, help="stop within this share of the target")
    parser.add_argument("--pretrain-epochs", type=int_at_least(0), default=3)
    parser.add_argument("--final-epochs", type=int_at_least(0), default=3)
    parser.add_argument(
        "--proposal-images",
        type=int_at_least(64),
        default=1000,
        help="training images of each proposal's short-term fine-tune (one epoch; default 1000)",
    )
    parser.add_argument("--repeats", type=int_at_least(1), default=10, help="timed calls per latency measurement")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (with --threads 1: steady on a machine other jobs share)",
    )
    parser.add_argument(
        "--baseline", action="store_true", help="also train the uniformly thinned network of the same latency"
    )
    parser.add_argument(
        "--start",
        metavar="JSON",
        help="overrides to start from: a JSON object, or a JSON file (its 'overrides', "
        "e.g. from `backbones scale --json` or an earlier arch.json)",
    )
    parser.add_argument(
        "--max-steps", type=int_at_least(1), default=60, help="stop after this many steps even above the target"
    )
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing output folder's files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vision_backbones.budget.adapt_plot import write_plot
    from vision_backbones.budget.netadapt import (
        PROXY_IMAGE_SIZE,
        STATE_FILE,
        adapt,
        check_adapt_arguments,
        resume_state,
        width_baseline,
    )
    from vision_backbones.budget.proxy_data import load_splits
    from vision_backbones.weights import save_weights

    args = build_parser().parse_args(argv)
    channel_knobs(args.name)  # a family without channel fields: one line before anything is measured
    start = start_overrides(args.start)
    target_ms = args.latency_ms if args.latency_ms is not None else math.inf
    fraction = args.latency_fraction if args.latency_fraction is not None else 1.0
    # the API's own check, every flag before --out is touched: a refused run leaves no folder
    settings: dict[str, Any] = {
        "target_fraction": fraction,
        "data": args.data,
        "image_size": args.image_size,
        "threads": args.threads,
        "step_fraction": args.step_fraction,
        "step_decay": args.step_decay,
        "confirm_every": args.confirm_every,
        "rank_seeds": args.rank_seeds,
        "tolerance": args.tolerance,
        "pretrain_epochs": args.pretrain_epochs,
        "final_epochs": args.final_epochs,
        "proposal_images": args.proposal_images,
        "repeats": args.repeats,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "clock": args.clock,
        "start_overrides": start,
    }
    check_adapt_arguments(args.name, target_ms, **settings)
    load_splits(args.data, image_size=PROXY_IMAGE_SIZE, seed=args.seed)  # a corrupt image: one line, no --out yet
    predictor = None
    if args.predictor == "kernels":
        from vision_backbones.measure.predictor import DEFAULT_CACHE
        from vision_backbones.measure.predictor_build import load_or_build

        # CPU time (steadier); NetAdapt calibrates it by its own --clock measurements
        predictor = load_or_build(args.predictor_cache or DEFAULT_CACHE, threads=args.threads)
    out: Path = check_output_folder("--out", args.out)
    if (out / "arch.json").exists() and not args.force:
        raise ValueError(
            f"--out {str(out)!r} holds a finished run (arch.json); pass --force to start over, or a new --out"
        )
    resuming = (out / STATE_FILE).exists() and not args.force  # a killed run with the same --out continues
    if resuming:
        resume_state(out, args.name, target_ms, predictor, **settings)  # another run's or a corrupt state: one line
    else:
        for file in ("arch.json", "weights.safetensors", "log.jsonl", "path.png"):
            check_overwrite(out / file, force=args.force)
    logged: list[dict[str, Any]] = []
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )
    table_path = None  # the block table lives in memory for the run
    with progress:
        goal_text = f"{args.latency_ms:g} ms" if args.latency_ms is not None else f"{args.latency_fraction:g} x start"
        bar = progress.add_task(f"NetAdapt {args.name} -> {goal_text}", total=1.0, status="measuring")

        def on_step(step: dict[str, Any]) -> None:
            logged.append(step)  # adapt() itself keeps OUT/state.pt and OUT/log.jsonl
            first = logged[0]["latency_ms"]
            target = args.latency_ms if args.latency_ms is not None else args.latency_fraction * first
            done = (first - step["latency_ms"]) / max(first - target, 1e-9)
            progress.update(
                bar,
                completed=min(1.0, max(0.0, done)),
                status=f"step {step['step']}: {step['latency_ms']:.1f} ms, val {step['val_acc1']:.1f} %",
            )
            measured = step.get("measured_ms")
            console.print(
                f"step {step['step']}: {step['stage'] or 'start'}"
                + (f" -> {step['width']} ch" if step.get("width") else "")
                + (f", {measured:.2f} ms measured" if measured is not None else "")
                + (f", {step['predicted_ms']:.2f} ms predicted" if step.get("predicted_ms") is not None else "")
                + f", val {step['val_acc1']:.2f} %"
                + (
                    f", rank correlation of 2 seeds {step['rank_spearman']:.2f}"
                    if step.get("rank_spearman") is not None
                    else ""
                )
            )

        result = adapt(
            args.name,
            target_ms,
            **settings,
            table_path=table_path,
            predictor=predictor,
            on_step=on_step,
            out=out,
            resume=not args.force,
        )
        baseline = None
        if args.baseline:
            progress.update(bar, status="width-multiplier baseline")
            epochs = args.pretrain_epochs + args.final_epochs + len(result.steps) - 1
            baseline = width_baseline(
                args.name,
                result.latency_ms,
                data=args.data,
                image_size=args.image_size,
                threads=args.threads,
                epochs=epochs,
                repeats=args.repeats,
                seed=args.seed,
                table_path=table_path,
                clock=args.clock,
            )
    arch = {
        "base": args.name,
        "overrides": result.overrides,
        "latency_ms": result.latency_ms,
        "start_latency_ms": result.start_latency_ms,
        "target_ms": result.target_ms,
        "closing_start_ms": result.closing_start_ms,  # the start and the end measured again together
        "closing_ms": result.closing_ms,
        "val_acc1": result.val_acc1,
        "test_acc1": result.test_acc1,
        "seconds": result.seconds,
        "image_size": args.image_size,
        "threads": args.threads,
        "clock": args.clock,
        "baseline": baseline,
    }
    save_weights(
        result.model.state_dict(), out / "weights.safetensors", model_name=args.name, overrides=result.overrides
    )
    write_plot(
        result.steps,
        result.target_ms,
        baseline,
        out / "path.png",
        f"NetAdapt {args.name} on this machine",
        final=(result.latency_ms, result.val_acc1),
    )
    write_json(out / "arch.json", arch, indent=1)  # last: its presence marks a finished run
    (out / STATE_FILE).unlink(missing_ok=True)  # the steps are in log.jsonl, the weights in weights.safetensors
    off = 100 * (result.latency_ms / result.target_ms - 1)
    print(
        f"{args.name}: {result.start_latency_ms:.2f} -> {result.latency_ms:.2f} ms (target {result.target_ms:.2f}, {off:+.1f} %) in {len(result.steps) - 1} steps, "
        f"{result.seconds:.0f} s; proxy test top-1 {result.test_acc1:.2f} % (val {result.val_acc1:.2f} %)"
    )
    print(
        f"measured again together at the end: start {result.closing_start_ms:.2f} ms, end {result.closing_ms:.2f} ms "
        f"({100 * result.closing_ms / result.closing_start_ms:.1f} % of the start)"
    )
    if baseline:
        print(
            f"uniform width x{baseline['width']:g} baseline {json_text(baseline['overrides'], indent=None).strip()}: {baseline['latency_ms']:.2f} ms, proxy test top-1 {baseline['test_acc1']:.2f} % (val {baseline['val_acc1']:.2f} %)"
        )
    if abs(off) > 100 * args.tolerance:
        print(
            f"note: ended {off:+.1f} % from the target, outside +-{100 * args.tolerance:.0f} % (no stage could shrink further, or measurement noise)"
        )
    print(f"wrote {out}/arch.json, weights.safetensors, log.jsonl, path.png")
    return 0
