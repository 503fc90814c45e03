"""The proxy task NetAdapt fine-tunes on: the search's loader (:mod:`vision_backbones.search.data`), so
``backbones adapt --data`` takes what ``backbones search --data`` does (mnist, digits, an image folder
or WebDataset shards), checked by the same ``check_proxy_data``."""

from __future__ import annotations

from vision_backbones.search.data import ProxySplits, check_proxy_data

__all__ = ["check_proxy_data", "load_splits"]


def load_splits(data: str, *, image_size: int, seed: int = 0) -> ProxySplits:
    """``data``'s stratified 60/20/20 splits at ``image_size`` px (``search.evaluate.task_splits``, cached)."""
    from vision_backbones.search.evaluate import ProxyTask, task_splits

    return task_splits(ProxyTask(data=data, image_size=image_size, data_seed=seed))
