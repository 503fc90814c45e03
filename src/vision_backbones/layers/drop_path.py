"""Stochastic depth: drop a residual branch for a random subset of samples while training."""

from __future__ import annotations

from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero the whole branch for each sample with probability ``p``; rescale the survivors."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, num_blocks: int) -> list[float]:
    """The one stochastic-depth schedule: linear from 0 at the first block to ``rate`` at the last.

    (Huang et al. and timm; torchvision's EfficientNet stops one step short, ``rate * i / n``. Only
    training sees the difference: in eval mode every rate gives the same output.)
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {rate}")
    return [rate * (i / max(num_blocks - 1, 1)) for i in range(num_blocks)]  # the last is exactly rate
