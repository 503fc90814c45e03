"""``backbones search``: neural architecture search over a registered family, resumable, on one process or Ray.

    backbones search --space mnasnet --strategy reinforce --controller lstm --trials 60 \\
        --latency-ms 15 --data mnist --out runs/search/
    backbones search --space mnasnet --strategy evolution --trials 60 --epochs 3 --fidelity asha \\
        --workers 2 --latency-ms 15 --out runs/asha/   # trials cut short by asynchronous successive halving
    backbones search --space mnasnet_oneshot --strategy oneshot --strategy-option supernet_epochs=10 \\
        --trials 60 --out runs/oneshot/   # a supernet trained once, its paths searched with shared weights

Every trial goes to ``OUT/trials.jsonl``; at the end ``OUT`` holds ``pareto.png``,
``best_architecture.json`` (``create_model`` loads it through ``search.load_architecture``) and
``best_imagenet.yaml``; ``--retrain-epochs E`` then retrains the best from scratch for ``E`` epochs and
compares it on the test split with the registered model of the same family nearest in latency;
``--tune`` first retrains it over a learning rate x weight decay grid (``OUT/tune.jsonl``, chosen on
validation, reported on test). Every trial also goes to an Optuna study in ``OUT/study.db`` (``--storage
URL`` for another database, ``--no-study`` for none): ``optuna-dashboard sqlite:///OUT/study.db`` shows
the search while it runs. Rerunning the same command resumes; another search in the same ``--out`` is refused.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_backbones.cli import ArgumentParser, int_at_least

# weight-sharing strategies over op spaces whose chosen path leaves with its inherited weights
OP_WEIGHT_SHARING = ("spos", "fairnas", "fewshot", "darts", "drnas")
RETRAIN_SEED = 1  # the retraining's seed (and every --tune cell's)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def number_list(*, weight_decay: bool) -> Any:
    """An argparse ``type`` for ``0.01,0.03``: distinct finite numbers, each > 0 (learning rates) or >= 0."""
    expected = "numbers >= 0" if weight_decay else "numbers > 0"

    def parse(text: str) -> tuple[float, ...]:
        values: list[float] = []
        for item in text.split(","):
            try:
                value = float(item)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {expected} separated by commas, got {item!r}") from None
            if not math.isfinite(value) or value < 0 or (value == 0 and not weight_decay):
                raise argparse.ArgumentTypeError(f"expected {expected} separated by commas, got {item.strip()!r}")
            if value in values:
                raise argparse.ArgumentTypeError(f"expected distinct {expected}, got {item.strip()!r} twice")
            values.append(value)
        return tuple(values)

    parse.__name__ = f"comma-separated {expected}"
    return parse


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with ``VALUE`` read as JSON when it parses (numbers, true/false, null), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> ArgumentParser:
    from vision_backbones.search.data import DATA_HELP
    from vision_backbones.search.spaces import SPACES
    from vision_backbones.search.strategies import STRATEGIES

    parser = ArgumentParser(prog="backbones search", description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help=f"one of {', '.join(SPACES)}")
    parser.add_argument("--strategy", default="reinforce", help=f"one of {', '.join(STRATEGIES)}")
    parser.add_argument("--controller", default=None, help="REINFORCE's recurrent cell: lstm (default) or rnn")
    parser.add_argument("--preset", default="enas", help="REINFORCE defaults: enas (64 LSTM units) or zoph_le (2 x 35)")
    parser.add_argument(
        "--grow-every",
        type=int_at_least(1),
        default=None,
        help="REINFORCE on zoph_le: add 2 layers every N samples (Zoph & Le's growing depth)",
    )
    parser.add_argument(
        "--strategy-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other strategy option, e.g. population_size=20 or entropy_weight=0.001",
    )
    parser.add_argument("--trials", type=int_at_least(1), required=True, help="architectures to evaluate")
    parser.add_argument(
        "--latency-ms",
        type=positive_float,
        default=None,
        help="MnasNet reward ACC x (LAT/T)^-0.07 with target T (ms); default: accuracy alone",
    )
    parser.add_argument("--latency-mode", default="soft", help="soft (MnasNet default) or hard")
    parser.add_argument("--data", default="mnist", help=DATA_HELP)
    parser.add_argument("--epochs", type=int_at_least(1), default=2, help="proxy training epochs per trial")
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument("--workers", type=int_at_least(1), default=1, help="parallel trials (a local Ray when > 1)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (ray.init address)")
    parser.add_argument(
        "--retrain-epochs",
        type=int_at_least(0),
        default=0,
        help="retrain the best from scratch for this many epochs and compare (0: skip)",
    )
    parser.add_argument(
        "--prescreen",
        default=None,
        help="zero-cost proxy (synflow, naswot, zico, snip, grad_norm, jacob_cov, params, flops) that scores "
        "--prescreen-candidates random members; the best --prescreen-keep are evaluated first",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="with --retrain-epochs: retrain over a grid of --tune-lr x --tune-wd, choose on validation (OUT/tune.jsonl)",
    )
    parser.add_argument("--tune-lr", type=number_list(weight_decay=False), default=None, help="default 0.003,0.01,0.03")
    parser.add_argument("--tune-wd", type=number_list(weight_decay=True), default=None, help="default 0,1e-4,1e-3")
    study = parser.add_mutually_exclusive_group()
    study.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL that also gets every trial (default: sqlite:///OUT/study.db; optuna-dashboard URL)",
    )
    study.add_argument("--no-study", action="store_true", help="no Optuna study")
    parser.add_argument(
        "--fidelity",
        default=None,
        help="multi-fidelity: asha (Optuna's SuccessiveHalvingPruner) or hyperband; each trial reports its "
        "validation accuracy per epoch and stops when its pruner says so (rungs at --min-epochs x --reduction-factor^k)",
    )
    parser.add_argument("--min-epochs", type=int_at_least(1), default=1, help="with --fidelity: the first rung")
    parser.add_argument("--reduction-factor", type=int_at_least(2), default=3, help="with --fidelity: 1/N go on")
    parser.add_argument("--prescreen-candidates", type=int_at_least(1), default=100)
    parser.add_argument("--prescreen-keep", type=int_at_least(1), default=10)
    parser.add_argument("--out", required=True, help="the search folder (resumed when it holds this search)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _prescreen(args: argparse.Namespace) -> dict[str, Any]:
    """The pre-screen settings of the command line (checked: proxy name, strategy that can take it)."""
    from vision_backbones.search.prescreen import ACCEPTS_FOREIGN
    from vision_backbones.search.proxies import check_proxies
    from vision_backbones.search.strategies import STRATEGY_CLASSES

    if args.prescreen is None:
        return {}
    check_proxies([args.prescreen])
    if args.prescreen == "ensemble":
        raise ValueError("--prescreen ensemble ranks a population; expected a single proxy such as synflow")
    strategy = STRATEGY_CLASSES.get(args.strategy)  # an unknown one is named by SearchConfig
    if strategy is not None and strategy.__name__ not in ACCEPTS_FOREIGN:
        raise ValueError(
            f"--prescreen cannot warm-start --strategy {args.strategy}: it learns only from its own proposals; "
            "expected random, evolution or bananas"
        )
    return {"proxy": args.prescreen, "candidates": args.prescreen_candidates, "keep": args.prescreen_keep}


def _fidelity(args: argparse.Namespace) -> dict[str, Any]:
    """The multi-fidelity settings of the command line (``search.fidelity``), or none."""
    if args.fidelity is None:
        if args.min_epochs != 1 or args.reduction_factor != 3:
            raise ValueError(
                "--min-epochs / --reduction-factor set the pruner of --fidelity; expected --fidelity asha|hyperband"
            )
        return {}
    return {"kind": args.fidelity, "min_epochs": args.min_epochs, "reduction_factor": args.reduction_factor}


def config_from_args(args: argparse.Namespace) -> Any:
    """The ``SearchConfig`` of the command line, every value checked (nothing is written yet)."""
    from vision_backbones.search.evaluate import ProxyTask
    from vision_backbones.search.objectives import Objective
    from vision_backbones.search.runner import SearchConfig
    from vision_backbones.search.spaces import get_space
    from vision_backbones.search.strategies import make_strategy

    options: dict[str, Any] = dict(args.strategy_option)
    if args.strategy == "reinforce":
        options.setdefault("preset", args.preset)
        if args.controller is not None:
            options["cell"] = args.controller
        if args.grow_every is not None:
            options["grow_every"] = args.grow_every
    elif args.controller is not None or args.grow_every is not None:
        raise ValueError(f"--controller / --grow-every are REINFORCE options; --strategy is {args.strategy!r}")
    objective: dict[str, Any] = {}
    if args.latency_ms is not None:
        objective = {"kind": "mnasnet", "target_ms": args.latency_ms, "mode": args.latency_mode}
    from vision_backbones.search.data import check_proxy_data

    # a folder or shards recorded as an absolute path: the search resumes from any working directory
    task: dict[str, Any] = {"data": check_proxy_data(args.data), "epochs": args.epochs}
    space_size = get_space(args.space).image_size
    if space_size != ProxyTask.image_size:  # nasbench_mb's members are trained at 16 px, as in its table
        task["image_size"] = space_size
    Objective(**objective)
    proxy_task = ProxyTask(**task)
    config = SearchConfig(
        space=args.space,
        strategy=args.strategy,
        trials=args.trials,
        seed=args.seed,
        workers=args.workers,
        strategy_options=options,
        objective=objective,
        task=task,
        prescreen=_prescreen(args),
        fidelity=_fidelity(args),
    )
    make_strategy(
        config.strategy, get_space(config.space), seed=config.seed, task=proxy_task, **options
    )  # unknown option: one line
    return config


def _tune_grid(args: argparse.Namespace) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(lrs, weight_decays)`` of ``--tune`` (checked before the search runs), or ``None``."""
    from vision_backbones.search.tune import DEFAULT_LRS, DEFAULT_WEIGHT_DECAYS

    if not args.tune:
        if args.tune_lr is not None or args.tune_wd is not None:
            raise ValueError("--tune-lr / --tune-wd set the grid of --tune; expected --tune with them")
        return None
    if args.retrain_epochs == 0:
        raise ValueError("--tune tunes the retraining of the best architecture; expected --retrain-epochs E > 0")
    return args.tune_lr or DEFAULT_LRS, args.tune_wd or DEFAULT_WEIGHT_DECAYS


def _storage(args: argparse.Namespace, out: Path) -> str | None:
    """The study's storage URL: ``--storage``, else ``OUT/study.db`` when Optuna is installed; ``None``: no study."""
    from vision_backbones.search.study_log import default_storage, optuna_available

    if args.no_study:
        return None
    if args.storage is not None:
        return str(args.storage)
    if not optuna_available():
        print("Optuna is not installed: no study.db (pip install 'vision-backbones[search]' for a live view)")
        return None
    return default_storage(out)


def main(argv: Sequence[str] | None = None) -> int:
    from vision_backbones.registry import get_entry, list_models
    from vision_backbones.search.evaluate import ProxyTask, task_splits
    from vision_backbones.search.result import export_best, plot_pareto, retrain_and_compare
    from vision_backbones.search.runner import run_search
    from vision_backbones.search.spaces import get_space

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; expected a folder")
    grid = _tune_grid(args)
    task_splits(ProxyTask(**config.task))  # missing data fails here, before anything is written
    storage = _storage(args, out)
    trials = run_search(config, out, address=args.address, progress=not args.no_progress, storage=storage)
    space = get_space(config.space)
    plot_pareto(
        trials,
        out / "pareto.png",
        title=f"{config.space} / {config.strategy}: {len(trials)} trials",
        target_ms=args.latency_ms,
    )
    files = export_best(space, trials, out)
    if config.strategy in OP_WEIGHT_SHARING:  # the chosen path's inherited weights and batch-norm state
        from vision_backbones.search.search_weights import export_search_weights

        print(f"wrote {export_search_weights(out)}")
    best = max(trials, key=lambda t: t["reward"])
    print(
        f"best of {len(trials)} trials: #{best['number']} reward {best['reward']:.4f} "
        f"val {best['result']['val_acc1']:.2f} % latency {best['result'].get('latency_ms') or 0:.2f} ms"
    )
    print(f"wrote {files['architecture']}, {files['imagenet_config']} and {out / 'trials.jsonl'}")
    if args.retrain_epochs > 0:
        family = get_entry(space.base).family
        candidates = [n for n in list_models() if get_entry(n).family == family]
        task = ProxyTask(**{**config.task, "epochs": args.retrain_epochs})
        searched, tuned = None, None
        if grid is not None:  # Zoph & Le's grid over the retraining's lr x weight decay, chosen on validation
            from vision_backbones.search.study_log import study_name
            from vision_backbones.search.tune import tune_retraining, tuned_summary

            chosen = tune_retraining(
                space,
                best,
                task,
                out,
                lrs=grid[0],
                weight_decays=grid[1],
                seed=RETRAIN_SEED,
                storage=storage,
                study_name=study_name(config),
                progress=not args.no_progress,
            )
            task, searched = ProxyTask(**chosen["task"]), chosen["result"]
            tuned = tuned_summary(chosen, len(grid[0]) * len(grid[1]))
            files = export_best(space, trials, out, tuned=tuned)
            print(
                f"tuned: lr {tuned['lr']:g} weight decay {tuned['weight_decay']:g} val {tuned['val_acc1']:.2f} % "
                f"test {tuned['test_acc1']:.2f} % (recorded in {files['architecture']}, {out / 'tune.jsonl'})"
            )
        report = retrain_and_compare(
            space, trials, task, out, candidates=candidates, seed=RETRAIN_SEED, searched=searched, tuned=tuned
        )
        for role in ("searched", "nearest_registered"):
            entry = report[role]
            print(
                f"{role}: {entry['model']} test {entry['test_acc1']:.2f} % latency {entry['latency_ms']:.2f} ms "
                f"params {entry['params']}"
            )
    return 0
