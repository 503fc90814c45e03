#!/usr/bin/env python
"""NetAdapt against the uniform width multiplier at equal measured latency (issue 19, item 4).

    python benchmarks/budget/netadapt_vs_width.py calibrate   # alone: start and width-grid latencies
    python benchmarks/budget/netadapt_vs_width.py run [--workers 2]   # resumable: every training job
    python benchmarks/budget/netadapt_vs_width.py measure     # alone: every result re-timed, interleaved
    python benchmarks/budget/netadapt_vs_width.py report      # table, Welch t-tests, latency ratio, plot

Every phase takes ``--out DIR`` (default ``netadapt_vs_width/`` beside this file; one folder per machine) and
``--predictor-cache F`` (the kernel-level predictor built on this machine); ``--reuse-widths DIR`` reads a width
job's result from another run's folder when this one has none (the width points train by a recipe that does not
depend on the machine; their latencies are always re-timed here).

Families ``mobilenet_v2`` and ``resnet18``; targets 50 % and 75 % of the start latency; seeds 0, 1, 2.
Latency: batch 1, 3x224x224, 1000 classes, 1 thread, this process's CPU time (``--clock cpu``); ``calibrate`` and
``measure`` pin the thread to one CPU and fix the malloc thresholds before building the networks (as the
predictor's timings do; interleaved rounds without that read some networks up to 44 % slow in ``backbones pick``).

* **NetAdapt** (``budget.netadapt.adapt``): pretrain 3 epochs on the proxy (MNIST-5k, 32 px, the seed's
  split), then steps of ``STEP_FRACTION`` x 0.96^(t-1) of the start latency, one proposal per channel knob
  (L2 filter selection, one epoch over 1,000 images each) sized by the kernel-level predictor, confirmed
  by measurement every 3 steps, until the measured latency is within 5 % of the target; then 3 epochs of
  long-term fine-tune. NetAdapt jobs run one at a time with nothing beside them: a first attempt with two
  jobs side by side measured the same network at 13.8 to 52.8 ms and was discarded before any comparison. Seed 0 at
  75 % also fine-tunes every proposal with a second seed (rank stability, ``rank_spearman``).
* **NetAdapt's architecture retrained**: the network NetAdapt ended on, trained from scratch by the width
  multiplier's recipe (same epochs, split and seed), so both architectures are compared under one recipe.
* **Width multiplier**: ``scaling.scaled_overrides`` at width ``w``, trained from scratch for
  ``WIDTH_EPOCHS`` on the same split and initialisation seed. ``calibrate`` times ``w`` = 0.30, 0.35, ..
  1.00 and picks, per target, the widest ``w`` whose latency meets it as NetAdapt must (within +5 %),
  plus the same for 35, 62, 88 and 100 % as curve points for the latency ratio at equal accuracy.

``run`` starts each job as its own process (fresh memory, one thread), width and retrain jobs two at a time; finished jobs
(``result.json``) are skipped, a killed NetAdapt job resumes from its ``state.pt``. ``measure`` re-times
the start network, every NetAdapt result and every width point in one process, interleaved rounds, so
the comparison does not rest on latencies taken while another job ran. Outputs in ``--out`` (``calibrate.json``,
``paths/<job>/{result.json,log.jsonl}``, ``latency.json``, or ``latency_<families>_<n>seeds.json`` with
``--families`` or ``--seeds``); the report as ``netadapt_vs_width.md``, ``.json`` and
``.png`` beside this file for the default folder, inside ``--out`` otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vision_backbones.io import read_json

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "netadapt_vs_width"
OUT = DEFAULT_OUT  # set by --out
PATHS = OUT / "paths"
REUSE_WIDTHS: Path | None = None  # set by --reuse-widths
DEFAULT_FAMILIES = FAMILIES = ("mobilenet_v2", "resnet18")  # set by --families
FRACTIONS = (0.5, 0.75)
CURVE_FRACTIONS = (0.35, 0.5, 0.62, 0.75, 0.88, 1.0)
DEFAULT_SEEDS = SEEDS = (0, 1, 2)  # set by --seeds
IMAGE_SIZE, THREADS, CLOCK = 224, 1, "cpu"
STEP_FRACTION = 0.05  # twice the reference 0.025: 13 steps to 50 % instead of 40, to fit the 2 cores here
PRETRAIN_EPOCHS, FINAL_EPOCHS, PROPOSAL_IMAGES = 3, 3, 1000
WIDTH_EPOCHS = 9  # 3 + 3 epochs NetAdapt trains whole, plus its steps' 1,000-image fine-tunes (2-5 epochs' worth)
TOLERANCE = 0.05  # NetAdapt stops once the measured latency is within 5 % of the target
PREDICTOR_CACHE = HERE.parent / "latency_predictor" / "kernels_cpu.json"  # built alone (latency_predictor.py)
GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(15))  # 0.30 .. 1.00


def _write_json(path: Path, value: Any) -> None:
    from vision_backbones.io import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, value)


def _width_arch(name: str, width: float) -> dict[str, Any]:
    from vision_backbones.scaling import Multipliers, scaled_overrides

    return scaled_overrides(name, Multipliers(width=width)) if width != 1.0 else {}


def _interleaved_ms(archs: dict[str, tuple[str, dict[str, Any]]], rounds: int) -> dict[str, Any]:
    """Median CPU and wall milliseconds per forward of every ``(family, overrides)``, timed in interleaved rounds."""
    import torch

    from vision_backbones.measure.allocator import fix_thresholds
    from vision_backbones.measure.predictor import pinned
    from vision_backbones.measure.timing import interleaved_times
    from vision_backbones.registry import create_model

    fix_thresholds()  # before the models are built: no forward's page faults depend on the one timed before it
    torch.manual_seed(0)
    example = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    models = {key: create_model(name, num_classes=1000, **arch).eval() for key, (name, arch) in archs.items()}

    def forward(model: Any) -> Any:
        def call() -> None:
            with torch.inference_mode():
                model(example)

        return call

    with pinned(THREADS):
        times = interleaved_times({k: forward(m) for k, m in models.items()}, rounds=rounds, warmup=2)
    return {
        key: {
            "cpu_ms": 1e3 * statistics.median(times["cpu"][key]),
            "wall_ms": 1e3 * statistics.median(times["wall"][key]),
        }
        for key in models
    }


def calibrate(rounds: int) -> None:
    """The start latency and the width grid of every family, alone; the widths each job trains."""
    from vision_backbones.measure.machine import machine_info

    load = os.getloadavg()
    archs = {f"{n}@{w:g}": (n, _width_arch(n, w)) for n in FAMILIES for w in GRID}
    timed = _interleaved_ms(archs, rounds)
    families = {}
    for name in FAMILIES:
        points = [(w, timed[f"{name}@{w:g}"]["cpu_ms"]) for w in GRID]
        start = points[-1][1]
        chosen = {}
        for fraction in CURVE_FRACTIONS:  # the widest multiplier that meets the target as NetAdapt must (+5 %)
            meeting = [w for w, ms in points if ms <= (1 + TOLERANCE) * fraction * start]
            chosen[f"{fraction:g}"] = max(meeting) if meeting else points[0][0]
        families[name] = {"start_ms": start, "grid": points, "widths": chosen}
    _write_json(
        OUT / "calibrate.json",
        {"machine": machine_info(), "load_before": load, "load_after": os.getloadavg(), "rounds": rounds,
         "families": families},
    )  # fmt: skip
    print(json.dumps(families, indent=1))


def jobs() -> list[dict[str, Any]]:
    """Every training job: the width points first (trained two at a time), then NetAdapt (alone), then
    NetAdapt's architectures retrained by the width points' recipe (two at a time)."""
    widths = read_json(OUT / "calibrate.json")["families"]
    adapt = [
        {"kind": "netadapt", "name": n, "fraction": f, "seed": s, "key": f"netadapt_{n}_{round(100 * f)}_s{s}"}
        for f in FRACTIONS
        for s in SEEDS
        for n in FAMILIES
    ]
    width = [
        {"kind": "width", "name": n, "width": w, "seed": s, "key": f"width_{n}_{w:g}_s{s}"}
        for s in SEEDS
        for n in FAMILIES
        for w in sorted(set(widths[n]["widths"].values()))
    ]
    retrain = [{**j, "kind": "retrain", "key": j["key"].replace("netadapt_", "retrain_", 1)} for j in adapt]
    return width + adapt + retrain


def result_path(job: dict[str, Any]) -> Path:
    """Where ``job``'s ``result.json`` is: this run's folder, or for a width point the reused run's."""
    own = PATHS / job["key"] / "result.json"
    if job["kind"] == "width" and not own.exists() and REUSE_WIDTHS is not None:
        reused = REUSE_WIDTHS / "paths" / job["key"] / "result.json"
        if reused.exists():
            return reused
    return own


def run_job(job: dict[str, Any]) -> None:
    """One job in this process; ``result.json`` written last (its presence means done)."""
    import torch

    from vision_backbones.budget.netadapt import adapt, train_from_scratch
    from vision_backbones.measure.machine import machine_info
    from vision_backbones.measure.predictor_build import load_or_build

    torch.set_num_threads(THREADS)
    folder = PATHS / job["key"]
    folder.mkdir(parents=True, exist_ok=True)
    start, load_before = time.perf_counter(), os.getloadavg()
    if job["kind"] == "width":
        scores = train_from_scratch(
            job["name"], _width_arch(job["name"], job["width"]), data="mnist", epochs=WIDTH_EPOCHS, seed=job["seed"]
        )
        result = {**job, "overrides": _width_arch(job["name"], job["width"]), **scores}
    elif job["kind"] == "retrain":
        adapted_key = job["key"].replace("retrain_", "netadapt_", 1)
        overrides = read_json(PATHS / adapted_key / "result.json")["overrides"]
        scores = train_from_scratch(job["name"], overrides, data="mnist", epochs=WIDTH_EPOCHS, seed=job["seed"])
        result = {**job, "overrides": overrides, **scores}
    else:
        adapted = adapt(
            job["name"], math.inf, target_fraction=job["fraction"], data="mnist", image_size=IMAGE_SIZE,
            threads=THREADS, step_fraction=STEP_FRACTION, pretrain_epochs=PRETRAIN_EPOCHS,
            proposal_images=PROPOSAL_IMAGES, final_epochs=FINAL_EPOCHS, seed=job["seed"], clock=CLOCK,
            confirm_every=3, rank_seeds=2 if job["seed"] == 0 and job["fraction"] == 0.75 else 1, out=folder,
            predictor=load_or_build(PREDICTOR_CACHE, threads=THREADS, clock=CLOCK),
        )  # fmt: skip
        result = {
            **job, "overrides": adapted.overrides, "in_run_ms": adapted.latency_ms, "start_ms": adapted.start_latency_ms,
            "target_ms": adapted.target_ms, "val_acc1": adapted.val_acc1, "test_acc1": adapted.test_acc1,
            "steps": len(adapted.steps) - 1, "closing_start_ms": adapted.closing_start_ms,
            "closing_ms": adapted.closing_ms, "redone": sum(bool(s.get("redone")) for s in adapted.steps),
            "rank_spearman": [s["rank_spearman"] for s in adapted.steps if s.get("rank_spearman") is not None],
        }  # fmt: skip
    result.update(
        seconds=time.perf_counter() - start,
        load_before=load_before,
        load_after=os.getloadavg(),
        cpu=machine_info()["cpu"],
    )
    _write_json(folder / "result.json", result)


def run_all(workers: int) -> None:
    """Every unfinished job as its own process, ``workers`` at a time, under one progress bar."""
    from vision_backbones.progress import progress_bar

    todo = [j for j in jobs() if not result_path(j).exists()]
    running: list[tuple[dict[str, Any], subprocess.Popen[bytes], Any]] = []
    failed = []
    with progress_bar("{task.fields[now]}", transient=False) as progress:
        bar = progress.add_task("jobs", total=len(todo), now="")
        while todo or running:
            while todo and len(running) < workers:
                # NetAdapt measures latency as it goes, so it runs with nothing beside it (beside a second job
                # its measurements swung +-50 %)
                if running and (todo[0]["kind"] == "netadapt" or any(r[0]["kind"] == "netadapt" for r in running)):
                    break
                job = todo.pop(0)
                PATHS.mkdir(parents=True, exist_ok=True)
                log = (PATHS / f"{job['key']}.stderr").open("wb")
                command = [sys.executable, __file__, "job", json.dumps(job), "--out", str(OUT)]
                command += ["--predictor-cache", str(PREDICTOR_CACHE)]
                command += ["--families", *FAMILIES, "--seeds", *map(str, SEEDS)]
                running.append((job, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log), log))
            time.sleep(2)
            for entry in list(running):
                job, process, log = entry
                if process.poll() is None:
                    continue
                running.remove(entry)
                log.close()
                if process.returncode != 0:
                    failed.append(job["key"])
                else:
                    (PATHS / f"{job['key']}.stderr").unlink(missing_ok=True)
                progress.update(bar, advance=1, now=f"{job['key']} rc {process.returncode}")
    if failed:
        raise SystemExit(f"failed jobs (see paths/<job>.stderr): {', '.join(failed)}")


def measure(rounds: int) -> None:
    """Every NetAdapt result, every width point and the start networks, re-timed together, alone."""
    from vision_backbones.measure.machine import machine_info

    archs: dict[str, tuple[str, dict[str, Any]]] = {}
    for job in jobs():
        result = result_path(job)
        if not result.exists():
            raise SystemExit(f"{job['key']} has not finished; run `run` first")
        if job["kind"] == "retrain":
            continue  # the same network as its NetAdapt job
        if job["kind"] == "netadapt":
            archs[job["key"]] = (job["name"], read_json(result)["overrides"])
        else:
            archs[f"width_{job['name']}_{job['width']:g}"] = (job["name"], _width_arch(job["name"], job["width"]))
    load = os.getloadavg()
    timed = _interleaved_ms(archs, rounds)
    _write_json(
        _latency_path(),
        {"machine": machine_info(), "load_before": load, "load_after": os.getloadavg(), "rounds": rounds,
         "clock": "median per-forward CPU and wall ms, 1 thread, batch 1, 224 px, 1000 classes", "latency": timed,
         "malloc_fixed": True},
    )  # fmt: skip


def _equal_accuracy_ms(curve: list[tuple[float, float]], accuracy: float) -> tuple[float, str]:
    """The least latency at which the width curve ``[(ms, mean acc)]`` (linear between points) reaches
    ``accuracy``; ``("<=", smallest ms)`` when its narrowest point already does, ``(">", largest)`` when none does."""
    points = sorted(curve)
    if points[0][1] >= accuracy:
        return points[0][0], "<="
    for (l0, a0), (l1, a1) in zip(points, points[1:]):
        if a0 < accuracy <= a1:
            return l0 + (l1 - l0) * (accuracy - a0) / (a1 - a0), "="
    return points[-1][0], ">"


def _relation(relation: str) -> str:
    return {"<=": "<=", ">": ">"}.get(relation, "")


def _trained_on(job: dict[str, Any], result: dict[str, Any]) -> str:
    """Which machine trained ``job``: recorded in newer results, else the machine of the run it came from."""
    source = result_path(job).parent.parent.parent
    cpu = result.get("cpu") or read_json(source / "calibrate.json")["machine"]["cpu"]
    where = "" if source == OUT else f", reused from {source.relative_to(HERE.parent.parent)}"
    return f"{job['kind']} jobs on {cpu}{where}"


def _options() -> str:
    """The non-default options of this run, as they are typed."""
    root = HERE.parent.parent
    options = f" --out {OUT.relative_to(root)} --predictor-cache {PREDICTOR_CACHE}"
    if (FAMILIES, SEEDS) != (DEFAULT_FAMILIES, DEFAULT_SEEDS):
        options += f" --families {' '.join(FAMILIES)} --seeds {' '.join(map(str, SEEDS))}"
    return options + (f" --reuse-widths {REUSE_WIDTHS}" if REUSE_WIDTHS is not None else "")


def _latency_path() -> Path:
    """``measure``'s output for this selection of families and seeds: ``latency.json`` by default."""
    return OUT / f"{_report_stem().replace('netadapt_vs_width', 'latency')}.json"


def _report_stem() -> str:
    """``netadapt_vs_width``, with the families and seed count when they are not the default ones."""
    if (FAMILIES, SEEDS) == (DEFAULT_FAMILIES, DEFAULT_SEEDS):
        return "netadapt_vs_width"
    return f"netadapt_vs_width_{'_'.join(FAMILIES)}_{len(SEEDS)}seeds"


def report() -> None:
    import numpy as np
    from scipy.stats import ttest_ind

    from vision_backbones.io import atomic_write_bytes
    from vision_backbones.measure.machine import describe
    from vision_backbones.plots import pyplot, save_figure

    folder = HERE if DEFAULT_OUT.resolve() == OUT else OUT
    calib = read_json(OUT / "calibrate.json")
    measured = read_json(_latency_path())
    latency = measured["latency"]
    missing = [j["key"] for j in jobs() if not result_path(j).exists()]
    if missing:
        raise SystemExit(f"{len(missing)} jobs have not finished ({missing[0]}, ...); run `run` first")
    results = {j["key"]: read_json(result_path(j)) for j in jobs()}
    rows, summary = [], {}
    plt = pyplot()
    figure, axes = plt.subplots(1, len(FAMILIES), figsize=(6 * len(FAMILIES), 4.5), squeeze=False)
    for axis, name in zip(axes[0], FAMILIES):
        start_ms = latency[f"width_{name}_1"]["cpu_ms"]
        widths = calib["families"][name]["widths"]
        curve = []
        for w in sorted(set(widths.values())):
            accs = [results[f"width_{name}_{w:g}_s{s}"]["test_acc1"] for s in SEEDS]
            curve.append((latency[f"width_{name}_{w:g}"]["cpu_ms"], statistics.mean(accs), statistics.stdev(accs), w))
        axis.errorbar(
            [c[0] for c in curve], [c[1] for c in curve], yerr=[c[2] for c in curve], marker="o", capsize=3,
            label=f"width multiplier ({WIDTH_EPOCHS} epochs from scratch)",
        )  # fmt: skip
        for fraction in FRACTIONS:
            keys = [f"netadapt_{name}_{round(100 * fraction)}_s{s}" for s in SEEDS]
            adapted = [results[k]["test_acc1"] for k in keys]
            adapted_ms = [latency[k]["cpu_ms"] for k in keys]
            w = widths[f"{fraction:g}"]
            thin = [results[f"width_{name}_{w:g}_s{s}"]["test_acc1"] for s in SEEDS]
            thin_ms = latency[f"width_{name}_{w:g}"]["cpu_ms"]
            p = float(ttest_ind(adapted, thin, equal_var=False).pvalue)
            mean_ms = statistics.mean(adapted_ms)
            # the multiplier at exactly NetAdapt's latency: each seed's width curve, linear in measured ms
            at_equal = [
                float(
                    np.interp(
                        ms, *zip(*sorted((c[0], results[f"width_{name}_{c[3]:g}_s{s}"]["test_acc1"]) for c in curve))
                    )
                )
                for ms, s in zip(adapted_ms, SEEDS)
            ]
            p_equal = float(ttest_ind(adapted, at_equal, equal_var=False).pvalue)
            equal_ms, relation = _equal_accuracy_ms([(c[0], c[1]) for c in curve], statistics.mean(adapted))
            retrained = [results[k.replace("netadapt_", "retrain_", 1)]["test_acc1"] for k in keys]
            p_retrained = float(ttest_ind(retrained, at_equal, equal_var=False).pvalue)
            retrained_ms, retrained_relation = _equal_accuracy_ms(
                [(c[0], c[1]) for c in curve], statistics.mean(retrained)
            )
            entry = {
                "netadapt_test": adapted, "netadapt_ms": adapted_ms, "width": w, "width_test": thin, "width_ms": thin_ms,
                "p_welch": p, "width_test_at_netadapt_ms": at_equal, "p_welch_at_netadapt_ms": p_equal, "start_ms": start_ms, "width_ms_at_equal_accuracy": equal_ms, "relation": relation,
                "latency_ratio_at_equal_accuracy": equal_ms / mean_ms, "retrained_test": retrained,
                "p_welch_retrained_vs_width_at_netadapt_ms": p_retrained,
                "retrained_latency_ratio_at_equal_accuracy": retrained_ms / mean_ms, "retrained_relation": retrained_relation,
                "steps": [results[k]["steps"] for k in keys], "in_run_ms": [results[k]["in_run_ms"] for k in keys],
                "in_run_target_ms": [results[k]["target_ms"] for k in keys],
                "seconds": [results[k]["seconds"] for k in keys],
                "rank_spearman": [v for k in keys for v in results[k]["rank_spearman"]],
            }  # fmt: skip
            summary[f"{name}@{fraction:g}"] = entry
            rows.append(
                f"| {name} | {100 * fraction:.0f} % | {statistics.mean(adapted):.2f} ± {statistics.stdev(adapted):.2f} | "
                f"{mean_ms:.2f} ({100 * mean_ms / start_ms:.0f} %) | x{w:g}: {statistics.mean(thin):.2f} ± "
                f"{statistics.stdev(thin):.2f} | {thin_ms:.2f} ({100 * thin_ms / start_ms:.0f} %) | {p:.3f} | "
                f"{statistics.mean(at_equal):.2f} ± {statistics.stdev(at_equal):.2f}"
                f"{' (clamped)' if min(adapted_ms) < min(c[0] for c in curve) else ''} | {p_equal:.3f} | "
                f"{_relation(relation)}{equal_ms / mean_ms:.2f}x | {statistics.mean(retrained):.2f} ± "
                f"{statistics.stdev(retrained):.2f} | {p_retrained:.3f} | {_relation(retrained_relation)}"
                f"{retrained_ms / mean_ms:.2f}x |"
            )
            axis.scatter(
                adapted_ms, adapted, marker="*", s=120, label=f"NetAdapt to {100 * fraction:.0f} % ({len(SEEDS)} seeds)"
            )
            axis.scatter(
                adapted_ms, retrained, marker="x", s=60,
                label=f"NetAdapt's {100 * fraction:.0f} % network retrained ({WIDTH_EPOCHS} epochs from scratch)",
            )  # fmt: skip
            for k in keys:
                path = [json.loads(line) for line in (PATHS / k / "log.jsonl").read_text().splitlines()]
                axis.plot(
                    [s["latency_ms"] * start_ms / path[0]["latency_ms"] for s in path], [s["test_acc1"] for s in path],
                    color="grey", alpha=0.3, linewidth=0.8,
                )  # fmt: skip
        axis.set_title(f"{name}: proxy test top-1 vs latency (1 thread, CPU ms)")
        axis.set_xlabel("measured latency, ms (224 px, batch 1)")
        axis.set_ylabel("MNIST-5k proxy test top-1 %")
        axis.legend(fontsize=7)
    stem = _report_stem()
    save_figure(figure, folder / f"{stem}.png", dpi=110)
    trained_on = sorted({_trained_on(job, results[job["key"]]) for job in jobs()})
    _write_json(
        folder / f"{stem}.json",
        {"machine": measured["machine"], "trained_on": trained_on, "summary": summary},
    )
    spearman = [v for e in summary.values() for v in e["rank_spearman"]]
    lines = [
        "# NetAdapt against the width multiplier at equal measured latency",
        "",
        "`python benchmarks/budget/netadapt_vs_width.py calibrate|run|measure|report"
        f"{'' if folder == HERE else _options()}` on {describe(measured['machine'])}; latencies re-timed together alone"
        f"{', pinned, malloc thresholds fixed' if measured.get('malloc_fixed') else ''} ({measured['rounds']} interleaved rounds, "
        f"load average {measured['load_before'][0]:.2f} before, {measured['load_after'][0]:.2f} after): CPU time, 1 thread, "
        f"batch 1, 224 px, 1000 classes. Proxy: MNIST-5k, 32 px, {len(SEEDS)} seeds (split and initialisation follow the seed).",
        "",
        f"NetAdapt: pretrain {PRETRAIN_EPOCHS} epochs, steps of {STEP_FRACTION:g} x 0.96^(t-1) of the start latency, "
        f"one proposal per channel knob fine-tuned one epoch over {PROPOSAL_IMAGES} images, L2 filter selection, "
        f"measured every 3 steps, long-term fine-tune {FINAL_EPOCHS} epochs. Width multiplier: trained from scratch "
        f"{WIDTH_EPOCHS} epochs. p: Welch's two-sided t-test, {len(SEEDS)} vs {len(SEEDS)} seeds. The multiplier at NetAdapt's ms: each seed's "
        "width curve (6 widths, linear in measured ms) read at that seed's NetAdapt latency (clamped: below the "
        "narrowest width's latency, which then stands in, slower than NetAdapt's network). Latency ratio at equal accuracy: the "
        f"multiplier curve's latency (linear between the 6 widths' {len(SEEDS)}-seed means) where it reaches NetAdapt's mean "
        "accuracy, over NetAdapt's mean latency (the paper's 1.7x figure; <= : the narrowest width already reaches it). "
        f"Retrained: NetAdapt's network trained from scratch by the multiplier's recipe ({WIDTH_EPOCHS} epochs, same split "
        "and seed), p against the multiplier at NetAdapt's ms.",
        "",
        "Trained on: " + "; ".join(trained_on) + ".",
        "",
        "| family | target | NetAdapt test top-1 | NetAdapt ms | multiplier trained at the target: test top-1 | its ms | p "
        "| multiplier at NetAdapt's ms (interpolated) | p | latency ratio at equal accuracy "
        "| NetAdapt's network retrained: test top-1 | p | its latency ratio at equal accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    for key, entry in summary.items():
        lines.append(
            f"- {key}: steps {entry['steps']}, in-run measured {', '.join(f'{v:.1f}' for v in entry['in_run_ms'])} ms "
            f"against in-run targets {', '.join(f'{v:.1f}' for v in entry['in_run_target_ms'])} ms; "
            f"wall {', '.join(f'{v / 60:.0f}' for v in entry['seconds'])} min."
        )
    if spearman:
        lines.append(
            f"- Rank stability of proposals across two fine-tune seeds (seed 0 at 75 %): Spearman median "
            f"{statistics.median(spearman):.2f} over {len(spearman)} steps (min {min(spearman):.2f}, max {max(spearman):.2f})."
        )
    lines += ["", f"![NetAdapt vs width]({stem}.png)"]
    atomic_write_bytes(folder / f"{stem}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


def main() -> int:
    global OUT, PATHS, PREDICTOR_CACHE, REUSE_WIDTHS, FAMILIES, SEEDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("calibrate", "run", "job", "measure", "report"))
    parser.add_argument("job", nargs="?", help="(job) the job as JSON")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="this run's folder (one per machine)")
    parser.add_argument("--predictor-cache", type=Path, default=PREDICTOR_CACHE, help="the predictor built here")
    parser.add_argument(
        "--reuse-widths", type=Path, default=None, help="another run's folder to read width points from"
    )
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES), choices=DEFAULT_FAMILIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    args = parser.parse_args()
    FAMILIES, SEEDS = tuple(args.families), tuple(args.seeds)
    OUT, PREDICTOR_CACHE = args.out.resolve(), args.predictor_cache
    PATHS, REUSE_WIDTHS = OUT / "paths", args.reuse_widths and args.reuse_widths.resolve()
    if args.phase == "calibrate":
        calibrate(args.rounds)
    elif args.phase == "run":
        run_all(args.workers)
    elif args.phase == "job":
        run_job(json.loads(args.job))
    elif args.phase == "measure":
        measure(args.rounds)
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
