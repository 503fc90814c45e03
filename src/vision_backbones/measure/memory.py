"""Memory: the peak bytes of activations alive in a forward, and the bytes autograd saves for backward.

Both count tensor storages (not tensors: views and in-place results share one)
and leave out the storages of the tensors named in ``ignore`` (weights, buffers, the input).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def _storage_key(tensor: Tensor) -> int | None:
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # sparse, nested or otherwise storage-less tensors
        return None


class LiveActivationMemory(TorchDispatchMode):
    """Track the bytes of tensor storages that the ops run under it create and keep alive.

    Every op output's storage is counted once (views and in-place results share it) and released by
    a ``weakref.finalize`` on the storage object, which PyTorch keeps alive exactly as long as the
    storage itself. Storages of the ``ignore`` tensors (weights, buffers, the input) never count.
    ``peak`` is the largest total alive at any point while the mode was active.
    """

    def __init__(self, ignore: Iterable[Tensor] = ()) -> None:
        super().__init__()
        self._ignore = {key for key in map(_storage_key, ignore) if key is not None}
        self._seen: set[int] = set()  # ids of storage objects currently counted
        self.live = 0
        self.peak = 0

    def _release(self, ident: int, nbytes: int) -> None:
        self._seen.discard(ident)
        self.live -= nbytes

    def _track(self, tensor: Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        if storage.data_ptr() in self._ignore or id(storage) in self._seen or storage.nbytes() == 0:
            return
        nbytes = storage.nbytes()
        self._seen.add(id(storage))
        weakref.finalize(storage, self._release, id(storage), nbytes)
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, Tensor):
                self._track(leaf)
        return out


class SavedForBackward:
    """Bytes of the distinct storages autograd saves for backward (weights and input excluded)."""

    def __init__(self, ignore: Iterable[Tensor] = ()) -> None:
        self._ignore = {key for key in map(_storage_key, ignore) if key is not None}
        self._storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())

    def _pack(self, tensor: Tensor) -> Tensor:
        key = _storage_key(tensor)
        if key is not None and key not in self._ignore:
            self._storages[key] = max(self._storages.get(key, 0), tensor.untyped_storage().nbytes())
        return tensor

    @staticmethod
    def _unpack(tensor: Tensor) -> Tensor:
        return tensor

    def __enter__(self) -> SavedForBackward:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
