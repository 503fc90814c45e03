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
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.io import check_output_folder, read_json, write_json
from vision_backbones.scaling import Multipliers, scaled_overrides
from vision_backbones.validate import check_float, check_int

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


def _read_done(path: Path, data: str) -> dict[str, Any]:
    """The finished candidates in ``grid.json`` (a resumed grid skips them), each checked (rows without
    ``data`` were trained on mnist)."""
    if not path.exists():
        return {}
    try:
        done = read_json(path)
    except ValueError as error:  # not JSON: the file named, and what to do
        raise ValueError(f"{error}; {GRID_FIX}") from None
    if not isinstance(done, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(done).__name__}, not the grid's candidates; {GRID_FIX}")
    for key, row in done.items():
        if not isinstance(row, dict) or any(not isinstance(row.get(k), (int, float)) for k in _ROW_KEYS):
            raise ValueError(
                f"{str(path)!r}: candidate {key!r} is not a finished row (expected {', '.join(_ROW_KEYS)}); {GRID_FIX}"
            )
        if row.get("data", "mnist") != data:
            raise ValueError(
                f"{str(path)!r}: candidate {key!r} was trained on --data {row.get('data', 'mnist')!r}, not {data!r}; {GRID_FIX}"
            )
    return done


def run_grid(
    base: str,
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    train_images: int | None = 2000,
    tolerance: float = 0.04,
    data: str = "mnist",
) -> list[dict[str, Any]]:
    """Train every candidate of the grid on ``data`` (resumable through ``OUT/grid.json``); returns the rows."""
    from vision_backbones.progress import progress_bar
    from vision_backbones.search.data import check_proxy_data
    from vision_backbones.search.evaluate import ProxyTask, evaluate_architecture

    grid = check_grid_arguments(
        base, out, seeds=seeds, epochs=epochs, train_images=train_images, tolerance=tolerance, data=data
    )
    data = check_proxy_data(data)  # a folder as its absolute path, as recorded in each row
    path = Path(out) / "grid.json"
    done = _read_done(path, data)
    with progress_bar(transient=False) as progress:
        task_bar = progress.add_task(f"alpha/beta/gamma grid on {base}", total=len(grid))
        for alpha, beta, gamma in grid:
            key = f"{alpha:g}/{beta:g}/{gamma:g}"
            if key not in done:
                arch = scaled_overrides(base, Multipliers(depth=alpha, width=beta, resolution=gamma))
                task = ProxyTask(data=data, image_size=proxy_size(32, gamma), epochs=epochs, train_images=train_images)
                trials = [evaluate_architecture(base, arch, task, seed=seed, latency=False) for seed in seeds]
                done[key] = {
                    "alpha": alpha,
                    "beta": beta,
                    "gamma": gamma,
                    "flops_factor": alpha * beta**2 * gamma**2,
                    "overrides": arch,
                    "image_size": task.image_size,
                    "val_acc1": statistics.mean(t["val_acc1"] for t in trials),
                    "test_acc1": statistics.mean(t["test_acc1"] for t in trials),
                    "params": trials[0]["params"],
                    "proxy_flops": trials[0]["flops"],
                    "seconds": sum(t["seconds"] for t in trials),
                    "seeds": list(seeds),
                    "data": data,
                }
                write_json(path, done, indent=1)
            progress.advance(task_bar)
    return list(done.values())


def markdown(base: str, rows: list[dict[str, Any]], header: str) -> str:
    reference = next(r for r in rows if (r["alpha"], r["beta"], r["gamma"]) == (1.0, 1.0, 1.0))
    scaled = sorted((r for r in rows if r is not reference), key=lambda r: -r["val_acc1"])
    best = scaled[0]
    lines = [
        header,
        "",
        f"Chosen: **alpha {best['alpha']:g}, beta {best['beta']:g}, gamma {best['gamma']:g}** "
        f"(val {best['val_acc1']:.2f} %, test {best['test_acc1']:.2f} %; unscaled {base}: val {reference['val_acc1']:.2f} %).",
        "",
        "| alpha (depth) | beta (width) | gamma (resolution) | a b^2 g^2 | proxy px | params | proxy MFLOPs | val top-1 % | test top-1 % | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [reference, *scaled]:
        lines.append(
            f"| {r['alpha']:g} | {r['beta']:g} | {r['gamma']:g} | {r['flops_factor']:.3f} | {r['image_size']} | {r['params'] / 1e6:.2f} M | "
            f"{r['proxy_flops'] / 1e6:.1f} | {r['val_acc1']:.2f} | {r['test_acc1']:.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
