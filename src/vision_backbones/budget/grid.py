"""EfficientNet's first step: a small grid search for alpha, beta, gamma on the proxy task.

Tan & Le fix phi = 1 and search ``d = alpha``, ``w = beta``, ``r = gamma`` under
``alpha * beta**2 * gamma**2 ~= 2`` on the base network, then scale with the winner. Here every
candidate (and the unscaled base, for reference) is trained on the search's proxy task
(``search.evaluate``; ``data`` as ``backbones search --data`` takes it: MNIST-5k by default, digits, an
image folder or WebDataset shards, the model built with the data's classes and channels) with the same
seeds, and ranked by validation top-1; the test split is reported but not used to choose. Resolution
``gamma`` scales the proxy images (32 px base), rounded to a multiple of 4. Each row records its
``data``: a resumed grid on other data is refused.

``python benchmarks/budget/grid.py --base mnasnet0_5 [--data FOLDER] --out benchmarks/budget/grid`` (writes
``grid.json`` and ``grid.md``; resumable: finished candidates are kept in ``grid.json``).
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vision_backbones.io import check_output_folder, lists_to_tuples, read_json, write_json
from vision_backbones.scaling import Multipliers, scaled_overrides
from vision_backbones.validate import check_choice, check_float, check_int

ALPHAS = (1.0, 1.2, 1.4, 1.6, 2.0)
BETAS = (1.0, 1.1, 1.2, 1.3, 1.4)
GAMMAS = (1.0, 1.1, 1.15, 1.2, 1.3)


def candidates(tolerance: float = 0.04) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) of the grid with ``|alpha beta^2 gamma^2 - 2| <= tolerance * 2``."""
    return [
        (a, b, g) for a, b, g in itertools.product(ALPHAS, BETAS, GAMMAS) if abs(a * b * b * g * g - 2) <= 2 * tolerance
    ]


def proxy_size(base_size: int, gamma: float) -> int:
    return max(32, round(base_size * gamma / 4) * 4)


GRID_FIX = "delete it to evaluate every candidate again, or pass a new --out"
_ROW_KEYS = ("alpha", "beta", "gamma", "val_acc1", "test_acc1")


def check_grid_arguments(
    base: str,
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    train_images: int | None = 2000,
    tolerance: float = 0.04,
    data: str = "mnist",
) -> list[tuple[float, float, float]]:
    """Every argument of :func:`run_grid` checked before anything trains; returns the grid (base first)."""
    from vision_backbones.search.data import check_proxy_data

    check_proxy_data(data)  # a missing or empty folder: one line
    scaled_overrides(base, Multipliers(depth=1.2, width=1.1))  # a family that cannot scale: its one line
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    for seed in seeds:
        check_int("seed", seed, min=0)
    check_int("epochs", epochs, min=1)
    if train_images is not None:
        check_int("train_images", train_images, min=1)
    check_float("tolerance", tolerance, min=0.0, min_open=True)
    found = candidates(tolerance)
    if not found:
        raise ValueError(
            f"tolerance {tolerance:g} keeps no (alpha, beta, gamma) of the grid; expected a larger tolerance (0.04)"
        )
    check_output_folder("--out", out)
    return [(1.0, 1.0, 1.0), *found]


def _read_done(path: Path, data: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The finished candidates in ``grid.json`` (a resumed grid skips them), each checked (rows without
    ``data`` were trained on mnist)."""
    settings = settings or {}
    if not path.exists():
        return {}
    try:
        done = read_json(path)
    except ValueError as error:  # not JSON: the file named, and what to do
        raise ValueError(f"{error}; {GRID_FIX}") from None
    if not isinstance(done, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(done).__name__}, not the grid's candidates; {GRID_FIX}")
    for key, row in done.items():
        finished = isinstance(row, dict) and all(isinstance(row.get(k), (int, float)) for k in _ROW_KEYS)
        seeded = isinstance(row, dict) and isinstance(row.get("trials"), dict)
        if not (finished or seeded):
            raise ValueError(
                f"{str(path)!r}: candidate {key!r} is not a finished row (expected {', '.join(_ROW_KEYS)}, "
                f"or its seeds' trials); {GRID_FIX}"
            )
        if row.get("data", "mnist") != data:
            raise ValueError(
                f"{str(path)!r}: candidate {key!r} was trained on --data {row.get('data', 'mnist')!r}, not {data!r}; {GRID_FIX}"
            )
        for setting, value in settings.items():
            if setting in row and row[setting] != value:
                raise ValueError(
                    f"{str(path)!r}: candidate {key!r} was trained with {setting} {row[setting]!r}, not {value!r}; {GRID_FIX}"
                )
    return done


def _trial(trial: Mapping[str, Any]) -> dict[str, Any]:
    """One proxy training of one candidate and seed (module level: Ray pickles it for its workers)."""
    from vision_backbones.search import evaluate  # looked up per call: tests replace evaluate_architecture

    task = evaluate.ProxyTask(**trial["task"])
    arch = lists_to_tuples(trial["arch"])  # JSON gave lists where the configs hold tuples
    return evaluate.evaluate_architecture(trial["base"], arch, task, seed=trial["seed"], latency=False)


def _summarize(row: dict[str, Any], seeds: Sequence[int]) -> None:
    """Mean (and spread) over the seeds into ``row``, once every seed of it has trained."""
    trials = [row["trials"][str(seed)] for seed in seeds]
    for metric in ("val_acc1", "test_acc1"):
        values = [t[metric] for t in trials]
        row[metric] = statistics.mean(values)
        row[f"{metric}_seeds"] = values
    row["params"] = trials[0]["params"]
    row["proxy_flops"] = trials[0]["flops"]
    row["seconds"] = sum(t["seconds"] for t in trials)
    row["seeds"] = list(seeds)


def run_trials(
    rows: dict[str, dict[str, Any]],
    path: Path,
    *,
    base: str,
    seeds: Sequence[int],
    workers: int = 1,
    title: str,
    twins: Mapping[str, str] | None = None,
) -> None:
    """Train every (row, seed) that ``rows`` lacks, ``workers`` at a time (Ray), saving ``path`` after each.

    ``rows``: key -> row with ``overrides`` and ``task`` (the ``ProxyTask`` fields); each finished
    trial lands in ``row["trials"][seed]`` and a row whose seeds are all in gets its means. A kill
    loses at most the trials in flight; the same call resumes. ``twins``: key -> the key of a row that
    trains the same network on the same task; such a row is not trained, its twin's trials are copied.
    """
    from vision_backbones.progress import progress_bar
    from vision_backbones.search.runner import make_executor

    twins = dict(twins or {})
    pending = [
        {"number": i, "key": key, "seed": seed, "base": base, "arch": rows[key]["overrides"], "task": rows[key]["task"]}
        for i, (key, seed) in enumerate((k, s) for k in rows for s in seeds)
        if str(seed) not in rows[key].setdefault("trials", {}) and key not in twins
    ]
    total = len(rows) * len(seeds)
    with progress_bar(transient=False) as progress:
        bar = progress.add_task(title, total=total, completed=total - len(pending))
        if not pending:
            _copy_twins(rows, twins, seeds, path)
            return
        executor = make_executor(workers)
        try:
            by_number = {t["number"]: t for t in pending}
            for number, result in executor.map(_trial, pending):
                trial = by_number[number]
                row = rows[trial["key"]]
                row["trials"][str(trial["seed"])] = {
                    k: result[k] for k in ("val_acc1", "test_acc1", "params", "flops", "seconds")
                }
                if all(str(seed) in row["trials"] for seed in seeds):
                    _summarize(row, seeds)
                write_json(path, rows, indent=1)
                progress.advance(bar)
        finally:
            executor.close()
        _copy_twins(rows, twins, seeds, path)


def _copy_twins(rows: dict[str, dict[str, Any]], twins: Mapping[str, str], seeds: Sequence[int], path: Path) -> None:
    """Each twin row takes its twin's trials (same network, same task: training it again repeats them)."""
    copied = False
    for key, source in twins.items():
        row, twin = rows[key], rows[source]
        if all(str(seed) in twin.get("trials", {}) for seed in seeds) and row.get("trials") != twin["trials"]:
            row["trials"] = {seed: dict(trial) for seed, trial in twin["trials"].items()}
            row["same_as"] = source
            _summarize(row, seeds)
            copied = True
    if copied:
        write_json(path, rows, indent=1)


def network_twins(base: str, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Key -> the first earlier key of a row at the same FLOPs factor that builds the same network (every
    parameter's name and shape) at the same deploy and proxy sizes: two rules' multipliers can round
    to one network (EfficientNet's and uniform scaling of mnasnet0_5 at 2x do)."""
    from vision_backbones.registry import build_on_meta

    first: dict[str, str] = {}
    twins: dict[str, str] = {}
    for key, row in rows.items():
        model = build_on_meta(base, **lists_to_tuples(row["overrides"]))
        shapes = [[name, list(p.shape)] for name, p in model.named_parameters()]
        identity = json.dumps([row.get("factor"), shapes, row.get("deploy_image_size"), row.get("image_size")])
        if identity in first:
            twins[key] = first[identity]
        else:
            first[identity] = key
    return twins


def _new_row(
    fields: dict[str, Any], overrides: dict[str, Any], *, data: str, epochs: int, train_images: int | None
) -> dict[str, Any]:
    """A row to train: ``fields`` (its multipliers), its ``overrides`` and the proxy ``task`` at 32 px x gamma."""
    task = {
        "data": data,
        "image_size": proxy_size(32, fields["gamma"]),
        "epochs": epochs,
        "train_images": train_images,
    }
    return {
        **fields,
        "overrides": overrides,
        "image_size": task["image_size"],
        "data": data,
        "epochs": epochs,
        "train_images": train_images,
        "task": task,
    }


def run_grid(
    base: str,
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    train_images: int | None = 2000,
    tolerance: float = 0.04,
    data: str = "mnist",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Train every candidate of the grid on ``data`` with every seed (resumable through ``OUT/grid.json``,
    per candidate and seed; ``workers`` trials at a time on Ray); returns the rows."""
    from vision_backbones.search.data import check_proxy_data

    grid = check_grid_arguments(
        base, out, seeds=seeds, epochs=epochs, train_images=train_images, tolerance=tolerance, data=data
    )
    check_int("workers", workers, min=1)
    data = check_proxy_data(data)  # a folder as its absolute path, as recorded in each row
    path = Path(out) / "grid.json"
    done = _read_done(path, data, {"epochs": epochs, "train_images": train_images})
    for alpha, beta, gamma in grid:
        key = _key({"alpha": alpha, "beta": beta, "gamma": gamma})
        if key not in done:  # a row already there has its trials, or is a finished row of an older grid
            done[key] = _new_row(
                {"alpha": alpha, "beta": beta, "gamma": gamma, "flops_factor": alpha * beta**2 * gamma**2},
                scaled_overrides(base, Multipliers(depth=alpha, width=beta, resolution=gamma)),
                data=data,
                epochs=epochs,
                train_images=train_images,
            )
    run_trials(done, path, base=base, seeds=seeds, workers=workers, title=f"alpha/beta/gamma grid on {base}")
    return list(done.values())


def confidence(rows: Sequence[dict[str, Any]], *, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """How often each row would be chosen (best mean validation top-1) when every row's seeds are
    resampled with replacement: the chance the choice survives another draw of the same seeds."""
    import random

    generator = random.Random(seed)
    wins = dict.fromkeys(range(len(rows)), 0)
    for _ in range(resamples):
        means = [statistics.mean(generator.choices(r["val_acc1_seeds"], k=len(r["val_acc1_seeds"]))) for r in rows]
        wins[max(range(len(rows)), key=means.__getitem__)] += 1
    return {_key(rows[i]): wins[i] / resamples for i in wins}


def _key(row: dict[str, Any]) -> str:
    return f"{row['alpha']:g}/{row['beta']:g}/{row['gamma']:g}"


def _spread(row: dict[str, Any], metric: str) -> str:
    values = row.get(f"{metric}_seeds") or [row[metric]]
    if len(values) < 2:
        return f"{row[metric]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p-value of two seed samples (``None`` below two seeds each)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    if statistics.stdev(a) == 0 and statistics.stdev(b) == 0:
        return 1.0 if statistics.mean(a) == statistics.mean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def markdown(base: str, rows: list[dict[str, Any]], header: str) -> str:
    rows = [r for r in rows if "val_acc1" in r]  # rows whose seeds are all in
    reference = next(r for r in rows if (r["alpha"], r["beta"], r["gamma"]) == (1.0, 1.0, 1.0))
    scaled = sorted((r for r in rows if r is not reference), key=lambda r: -r["val_acc1"])
    if not scaled:
        return f"{header}\n\nNo scaled candidate has finished every seed yet (unscaled {base}: val {_spread(reference, 'val_acc1')} %).\n"
    best = scaled[0]
    lines = [
        header,
        "",
        f"Chosen: **alpha {best['alpha']:g}, beta {best['beta']:g}, gamma {best['gamma']:g}** "
        f"(val {_spread(best, 'val_acc1')} %, test {_spread(best, 'test_acc1')} %; unscaled {base}: val {_spread(reference, 'val_acc1')} %).",
    ]
    if len(best.get("val_acc1_seeds", [])) >= 2 and len(scaled) > 1:
        chance = confidence(scaled)
        runner_up = scaled[1]
        p = welch_p(best["val_acc1_seeds"], runner_up["val_acc1_seeds"])
        official = next((r for r in scaled if (r["alpha"], r["beta"], r["gamma"]) == (1.2, 1.1, 1.15)), None)
        lines += [
            "",
            f"Confidence: the choice wins **{chance[_key(best)]:.0%}** of {2000} bootstrap redraws of the seeds "
            f"(runner-up {_key(runner_up)}: {chance[_key(runner_up)]:.0%}; Welch p best vs runner-up {p:.2f}).",
        ]
        if official is not None and official is not best:
            p_official = welch_p(best["val_acc1_seeds"], official["val_acc1_seeds"])
            lines.append(
                f"EfficientNet's published 1.2/1.1/1.15 here: val {_spread(official, 'val_acc1')} % "
                f"(Welch p against the choice {p_official:.2f}; wins {chance[_key(official)]:.0%} of the redraws)."
            )
    lines += [
        "",
        "| alpha (depth) | beta (width) | gamma (resolution) | a b^2 g^2 | proxy px | params | proxy MFLOPs | val top-1 % | test top-1 % | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [reference, *scaled]:
        lines.append(
            f"| {r['alpha']:g} | {r['beta']:g} | {r['gamma']:g} | {r['flops_factor']:.3f} | {r['image_size']} | {r['params'] / 1e6:.2f} M | "
            f"{r['proxy_flops'] / 1e6:.1f} | {_spread(r, 'val_acc1')} | {_spread(r, 'test_acc1')} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- scaling rules compared at 2x / 4x FLOPs

SCALING_RULES = ("efficientnet", "dWr", "uniform")


def _rule_key(row: dict[str, Any]) -> str:
    return f"{row['rule']}@{row['factor']:g}x"


def scaled_by_rule(base: str, rule: str, factor: float, base_image_size: int = 224) -> Any:
    """``scaling.scale_model`` of ``base`` to ``factor`` x its FLOPs at ``base_image_size`` by ``rule``:
    EfficientNet's published coefficients, Dollár's dWr (0.1/0.8/0.1) or uniform (1/3 each)."""
    from vision_backbones.registry import model_info
    from vision_backbones.scaling import UNIFORM_EXPONENTS, scale_model

    check_choice("rule", rule, SCALING_RULES)
    target = model_info(base, image_size=base_image_size)["flops"] / 1e9 * factor
    if rule == "uniform":
        return scale_model(base, strategy="dWr", exponents=UNIFORM_EXPONENTS, target_gflops=target)
    return scale_model(base, strategy=rule, target_gflops=target)


def run_comparison(
    base: str,
    out: Path,
    *,
    factors: Sequence[float] = (2.0, 4.0),
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 2,
    train_images: int | None = 2000,
    data: str = "mnist",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Each rule of ``SCALING_RULES`` at each FLOPs ``factor``, trained on the grid's proxy with every
    seed (resumable through ``OUT/compare.json``); the proxy image is 32 px x the rule's resolution."""
    from vision_backbones.search.data import check_proxy_data

    check_grid_arguments(base, out, seeds=seeds, epochs=epochs, train_images=train_images, data=data)
    for factor in factors:
        check_float("factor", factor, min=1.0)
    check_int("workers", workers, min=1)
    data = check_proxy_data(data)
    path = Path(out) / "compare.json"
    done = _read_done(path, data, {"epochs": epochs, "train_images": train_images})
    for factor in factors:
        for rule in SCALING_RULES:
            key = _rule_key({"rule": rule, "factor": factor})
            if key in done:
                continue
            scaled = scaled_by_rule(base, rule, factor)
            m = scaled.multipliers
            fields = {"rule": rule, "factor": factor, "alpha": m.depth, "beta": m.width, "gamma": m.resolution}
            done[key] = _new_row(fields, scaled.overrides, data=data, epochs=epochs, train_images=train_images)
            done[key].update(deploy_image_size=scaled.image_size, deploy_flops=scaled.info()["flops"])
    run_trials(
        done,
        path,
        base=base,
        seeds=seeds,
        workers=workers,
        title=f"scaling rules on {base}",
        twins=network_twins(base, done),
    )
    return list(done.values())


def measure_rule_latencies(
    base: str, rows: list[dict[str, Any]], *, rounds: int = 9, threads: int = 1
) -> dict[str, dict[str, float]]:
    """Eager latency (batch 1, ``threads``) of every row's network at its deploy size, each as a median
    ratio to the base at 224 px over interleaved rounds; ``{key: {"ms", "ratio"}}``."""
    import torch

    from vision_backbones.measure.timing import interleaved_times, num_threads, ratio_summary
    from vision_backbones.registry import create_model

    calls: dict[str, Any] = {}
    keyed = {_rule_key(row): row for row in rows}
    twins = network_twins(base, keyed)  # one network is timed once, whichever rules round to it
    with num_threads(threads), torch.no_grad():
        models = {"base": (create_model(base).eval(), 224)}
        for key, row in keyed.items():
            if key in twins:
                continue
            models[key] = (
                create_model(base, **lists_to_tuples(row["overrides"])).eval(),
                row["deploy_image_size"],
            )
        for key, (model, size) in models.items():
            x = torch.randn(1, 3, size, size)
            calls[key] = lambda model=model, x=x: model(x)
        times = interleaved_times(calls, rounds=rounds, warmup=2, min_time=0.2)["wall"]
    measured = {
        key: {"ms": statistics.median(times[key]) * 1e3, "ratio": ratio_summary(times[key], times["base"])["median"]}
        for key in times
    }
    return measured | {key: measured[source] for key, source in twins.items()}


def compare_markdown(
    base: str, rows: list[dict[str, Any]], latencies: dict[str, dict[str, float]] | None, header: str
) -> str:
    rows = [r for r in rows if "val_acc1" in r]
    lines = [
        header,
        "",
        "| FLOPs | rule | d / w / r | deploy px | deploy GFLOPs | params | proxy px | val top-1 % | test top-1 % | latency ms (x base) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    twins = network_twins(base, {_rule_key(r): r for r in rows})
    for r in sorted(rows, key=lambda r: (r["factor"], SCALING_RULES.index(r["rule"]))):
        latency = latencies.get(_rule_key(r)) if latencies else None
        lat = f"{latency['ms']:.1f} ({latency['ratio']:.2f}x)" if latency else "-"
        twin = twins.get(_rule_key(r))
        rule = f"{r['rule']} (the same network as {twin.split('@')[0]})" if twin else r["rule"]
        lines.append(
            f"| {r['factor']:g}x | {rule} | {r['alpha']:.2f} / {r['beta']:.2f} / {r['gamma']:.2f} | {r['deploy_image_size']} | "
            f"{r['deploy_flops'] / 1e9:.2f} | {r['params'] / 1e6:.2f} M | {r['image_size']} | {_spread(r, 'val_acc1')} | "
            f"{_spread(r, 'test_acc1')} | {lat} |"
        )
    for factor in sorted({r["factor"] for r in rows}):
        group = sorted(
            (r for r in rows if r["factor"] == factor and _rule_key(r) not in twins), key=lambda r: -r["val_acc1"]
        )
        if len(group) > 1 and len(group[0].get("val_acc1_seeds", [])) >= 2:
            p = welch_p(group[0]["val_acc1_seeds"], group[1]["val_acc1_seeds"])
            lines.append(
                f"\nAt {factor:g}x the best by validation is {group[0]['rule']} "
                f"({group[0]['val_acc1']:.2f} % vs {group[1]['rule']} {group[1]['val_acc1']:.2f} %, Welch p {p:.2f})."
            )
    return "\n".join(lines) + "\n"
