"""The chosen path's weights of a finished weight-sharing search folder (apart from ``path_weights``,
which the strategies import: this module needs the strategy table, so it sits above both)."""

from __future__ import annotations

import os
from pathlib import Path

from vision_backbones.io import load_torch_file, read_json
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.path_weights import WEIGHTS_FILE


def export_search_weights(out: str | os.PathLike[str]) -> Path:
    """``best_weights.safetensors`` of the best trial of the finished search folder ``out``."""
    from vision_backbones.search.result import best_trial
    from vision_backbones.search.runner import CONFIG_FILE, load_trials
    from vision_backbones.search.runner import WEIGHTS_FILE as SUPERNET_FILE
    from vision_backbones.search.spaces import get_space
    from vision_backbones.search.strategies import make_strategy

    out = Path(out)
    config = read_json(out / CONFIG_FILE)
    strategy = make_strategy(
        config["strategy"],
        get_space(config["space"]),
        seed=config["seed"],
        task=ProxyTask(**config["task"]),
        **config["strategy_options"],
    )
    if not hasattr(strategy, "export_weights"):
        raise ValueError(
            f"strategy {config['strategy']!r} keeps no path weights; expected a weight-sharing op strategy"
        )
    weights = load_torch_file(out / SUPERNET_FILE, fix="rerun the search to train them")
    strategy.load_weights_state_dict(weights)  # type: ignore[attr-defined]
    target = out / WEIGHTS_FILE
    strategy.export_weights(best_trial(load_trials(out))["indices"], target)
    return target
