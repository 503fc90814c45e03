"""What a finished search leaves behind: a Pareto plot, the best architecture as files, a retrained comparison.

- ``pareto.png``: validation accuracy against measured latency of every trial, the Pareto front
  (no other trial both more accurate and faster) drawn as a line.
- ``best_architecture.json``: ``{"model": base, "overrides": {...}}`` of the highest-reward trial, exactly
  the evaluated (proxy-sized) network: ``create_model(model, **load_architecture(path)[1])``.
- ``best_imagenet.yaml``: the library's ImageNet recipe (``configs/imagenet/resnet18.yaml``'s settings)
  for the same architecture at full size (the space's proxy shrinking removed), for
  ``backbones train fit --config``.
- With ``--tune`` (``search.tune``), both files record the learning rate and weight decay the proxy
  retraining chose (``"tuned"`` in the JSON, a comment in the YAML: the recipe's optimizer is unchanged).
- ``retrain_comparison.json``: the best architecture retrained from scratch next to the registered model
  nearest in latency, both on the same proxy task, scored on the *test* split the search never saw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vision_backbones.io import atomic_write_bytes, write_json
from vision_backbones.pareto import pareto_front
from vision_backbones.plots import pyplot, save_figure
from vision_backbones.search.spaces import SearchSpace, from_json, save_architecture, to_json

RECIPE = Path(__file__).resolve().parents[3] / "configs" / "imagenet" / "resnet18.yaml"


def plot_pareto(
    trials: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str, target_ms: float | None = None
) -> Path | None:
    """Accuracy vs latency of every trial with the front; ``None`` when no trial has a latency."""
    plt = pyplot()
    measured = [t for t in trials if t["result"].get("latency_ms") is not None]
    if not measured:
        return None
    points = [(t["result"]["latency_ms"], t["result"]["val_acc1"]) for t in measured]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.scatter(
        [p[0] for p in points],
        [p[1] for p in points],
        s=14,
        c=[t["number"] for t in measured],
        cmap="viridis",
        label="trials (colour: trial number)",
    )
    axes.plot([points[i][0] for i in front], [points[i][1] for i in front], "r.-", label="Pareto front")
    if target_ms is not None:
        axes.axvline(target_ms, color="grey", linestyle="--", label=f"target {target_ms:g} ms")
    axes.set_xlabel("latency (ms, this machine)")
    axes.set_ylabel("validation top-1 (%)")
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, dpi=120)


def best_trial(trials: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The highest-reward trial (the earliest of equals)."""
    return max(trials, key=lambda t: (t["reward"], -t["number"]))


def imagenet_config(
    base: str, overrides: Mapping[str, Any], run_name: str, tuned: Mapping[str, Any] | None = None
) -> str:
    """The ImageNet recipe's YAML with ``model``, ``model_overrides`` and the output folders set."""
    import yaml

    config = yaml.safe_load(RECIPE.read_text())
    config["model"]["model"] = base
    config["model"]["model_overrides"] = to_json(overrides)
    text = yaml.safe_dump(config, sort_keys=False, width=120)
    header = f"# The best architecture of a search, at full size, on the ImageNet recipe of {RECIPE.name}.\n"
    header += "# backbones train fit --config THIS_FILE [--data.root /data/ImageNet]\n"
    if tuned is not None:
        header += (
            f"# Proxy retraining tuned ({tuned.get('optimizer')}, epochs {tuned.get('epochs')}): "
            f"lr {tuned['lr']:g}, weight decay {tuned['weight_decay']:g} (validation {tuned['val_acc1']:.2f} %);\n"
            "# the recipe's own optimizer settings below are for ImageNet and are left as they are.\n"
        )
    return header + text.replace("runs/imagenet/resnet18", f"runs/imagenet/{run_name}")


def export_best(
    space: SearchSpace,
    trials: Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    tuned: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``best_architecture.json`` and ``best_imagenet.yaml`` into ``out`` (``tuned``: ``tune.tuned_summary``)."""
    out = Path(out)
    best = best_trial(trials)
    architecture = from_json(best["architecture"])
    files = {
        "architecture": save_architecture(
            out / "best_architecture.json",
            space.base,
            architecture,
            trial=best["number"],
            reward=best["reward"],
            result={k: v for k, v in best["result"].items() if not isinstance(v, (list, dict))},
            **({} if tuned is None else {"tuned": dict(tuned)}),
        )
    }
    run_name = f"search_{space.name}_trial{best['number']}"
    text = imagenet_config(space.base, space.full_size(architecture), run_name, tuned)
    files["imagenet_config"] = atomic_write_bytes(out / "best_imagenet.yaml", text.encode())
    return files


def nearest_registered(latency_ms: float, candidates: Sequence[str], task: Any) -> tuple[str, float]:
    """``(name, latency_ms)`` of the candidate whose latency (the task's settings) is nearest ``latency_ms``."""
    import torch

    from vision_backbones.registry import create_model
    from vision_backbones.search.latency import measure_latency_ms

    measured = []
    for name in candidates:
        torch.manual_seed(0)
        model = create_model(name, num_classes=task.latency_num_classes, in_channels=task.latency_in_channels)
        measured.append(
            (
                name,
                measure_latency_ms(
                    model,
                    image_size=task.latency_image_size,
                    threads=task.latency_threads,
                    repeats=task.latency_repeats,
                ),
            )
        )
    return min(measured, key=lambda item: abs(item[1] - latency_ms))


def retrain_and_compare(
    space: SearchSpace,
    trials: Sequence[Mapping[str, Any]],
    task: Any,
    out: str | os.PathLike[str],
    *,
    candidates: Sequence[str],
    seed: int = 1,
    searched: Mapping[str, Any] | None = None,
    tuned: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Retrain the best architecture from scratch (a new seed) and the registered model nearest in latency
    on ``task``; both are scored on the test split. Writes ``retrain_comparison.json``.

    ``searched``: the best architecture's result on ``task`` with ``seed`` already trained (the chosen cell
    of ``tune.tune_retraining``), not trained again; ``tuned``: recorded in the report.
    """
    import torch

    from vision_backbones.registry import create_model
    from vision_backbones.search.evaluate import evaluate_architecture, evaluate_model, proxy_model_kwargs

    best = best_trial(trials)
    architecture = from_json(best["architecture"])
    if searched is None:
        searched = evaluate_architecture(space.base, architecture, task, seed=seed)
    name, reference_latency = nearest_registered(searched["latency_ms"], candidates, task)
    torch.manual_seed(seed)
    # The registered model at its own size, with the data's classes and channels (10 and 1 for the digits).
    reference = evaluate_model(create_model(name, **proxy_model_kwargs(task)), task, seed=seed)
    keys = ("val_acc1", "test_acc1", "params", "flops", "train_seconds")
    report = {
        "task": task.to_dict(),
        "seed": seed,
        "searched": {
            "model": space.base,
            "trial": best["number"],
            **{k: searched[k] for k in keys},
            "latency_ms": searched["latency_ms"],
            "deploy_params": searched["deploy_params"],
        },
        "nearest_registered": {"model": name, **{k: reference[k] for k in keys}, "latency_ms": reference_latency},
        "candidates": list(candidates),
        **({} if tuned is None else {"tuned": dict(tuned)}),
    }
    write_json(Path(out) / "retrain_comparison.json", report)
    return report
