"""A weight-sharing search's result as a warm start: the chosen path's weights AND batch-norm state.

NNI users reloaded a retrained DARTS model at 36 % because the architecture and the batch-norm state
were not saved with the weights. Here the architecture is the runner's ``best_architecture.json``
(``result.export_best``: ``create_model(model, **overrides)`` rebuilds it) and the weights are a
safetensors file of ``OpSupernet.extract`` taken right after the path's batch-norm statistics were
recomputed exactly as for its score, so ``load_path_weights`` gives a ``create_model`` network with
the same validation accuracy as the scored path.

``search.search_weights.export_search_weights(out)`` does it for a finished search folder of ``--strategy
spos|fairnas|fewshot|darts|drnas``: it rebuilds the strategy from ``search.json``, loads ``supernet.pt``
and writes ``best_weights.safetensors`` for the highest-reward trial.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from vision_backbones.io import atomic_write_bytes
from vision_backbones.search.evaluate import ProxyTask
from vision_backbones.search.op_supernet import OpSupernet, load_path_into
from vision_backbones.search.op_supernet_training import path_score

WEIGHTS_FILE = "best_weights.safetensors"


def save_path_weights(
    supernet: OpSupernet, indices: Sequence[int], task: ProxyTask, path: str | os.PathLike[str], *, seed: int = 0
) -> float:
    """Recompute the path's batch norm as ``path_score`` does and write its state atomically; returns ``val_acc1``."""
    from safetensors.torch import save

    accuracy = path_score(supernet, indices, task, seed=seed)
    state = {key: value.contiguous() for key, value in supernet.extract(indices).items()}
    shape = {"num_classes": str(supernet.num_classes), "in_channels": str(supernet.in_channels)}
    metadata = {"space": supernet.space.name, "indices": str(list(indices)), **shape}
    atomic_write_bytes(path, save(state, metadata=metadata))
    return accuracy


def load_path_weights(
    path: str | os.PathLike[str],
    base: str,
    architecture: Mapping[str, Any],
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
) -> nn.Module:
    """``create_model(base, num_classes, in_channels, **architecture)`` holding the saved path state (strict).

    ``num_classes`` / ``in_channels`` default to the file's metadata (the search data's; 10 and 1 in
    files written before it was recorded).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from vision_backbones.registry import create_model

    if not Path(path).is_file():
        raise ValueError(f"{str(path)!r} does not exist; expected a {WEIGHTS_FILE} of a weight-sharing search")
    with safe_open(str(path), "pt") as file:
        metadata = file.metadata() or {}
    num_classes = int(metadata.get("num_classes", 10)) if num_classes is None else num_classes
    in_channels = int(metadata.get("in_channels", 1)) if in_channels is None else in_channels
    model = create_model(base, num_classes=num_classes, in_channels=in_channels, **architecture)
    try:
        return load_path_into(model, load_file(str(path)))
    except RuntimeError as error:
        reason = (str(error).strip().splitlines() or ["mismatch"])[0][:160]
        raise ValueError(f"{str(path)!r} does not fit {base} with these overrides ({reason})") from None
