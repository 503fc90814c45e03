"""Weight inheritance for a narrower network: NetAdapt's proposals start from the current weights."""

from __future__ import annotations

from torch import nn


def inherit_weights(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s tensors into the narrower ``target``: the leading slice of each (the first
    channels of every conv, norm and linear); tensors that grew or changed rank keep their init."""
    own = target.state_dict()
    theirs = source.state_dict()
    for key, tensor in own.items():
        old = theirs.get(key)
        if old is None or old.ndim != tensor.ndim or any(n > o for n, o in zip(tensor.shape, old.shape)):
            continue
        tensor.copy_(old[tuple(slice(0, n) for n in tensor.shape)] if tensor.ndim else old)
