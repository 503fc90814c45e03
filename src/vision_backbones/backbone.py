"""The one contract every backbone follows: a stem, a list of stages, and multi-scale outputs.

A backbone is ``stem -> stages[0] -> ... -> stages[-1]``. The stem is whatever a network does before
its first feature level (often nothing, or a stride-1 convolution); each stage ends at one feature
level, normally halving the resolution, so five stages give the levels at strides 2, 4, 8, 16, 32.
``out_channels`` and ``strides`` are computed from the stage list while the model is built, so a
detector neck can size itself without running the model (the detectron2 ``output_shape`` idea).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """Global average pool, optional hidden layer, dropout, then a linear classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        hidden_channels: int | None = None,
        hidden_activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}; use features_only=True for no head")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden: nn.Module | None = None
        if hidden_channels is not None:
            self.hidden = nn.Sequential(nn.Linear(in_channels, hidden_channels), hidden_activation())
            in_channels = hidden_channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, C)
        if self.hidden is not None:
            x = self.hidden(x)
        return self.fc(self.dropout(x))


def _normalize_out_indices(out_indices: Sequence[int] | None, num_levels: int) -> tuple[int, ...]:
    if out_indices is None:
        return tuple(range(num_levels))
    if isinstance(out_indices, int) or not all(isinstance(i, int) for i in out_indices):
        raise ValueError(f"out_indices must be a sequence of ints, got {out_indices!r}")
    if len(out_indices) == 0:
        raise ValueError("out_indices is empty; expected at least one level index")
    bad = [i for i in out_indices if not -num_levels <= i < num_levels]
    if bad:
        raise ValueError(f"out_indices {tuple(out_indices)} has {bad} out of range; this model has levels 0..{num_levels - 1}")
    indices = tuple(i % num_levels for i in out_indices)
    if len(set(indices)) != len(indices):
        raise ValueError(f"out_indices {tuple(out_indices)} has duplicates; expected each level once")
    if list(indices) != sorted(indices):
        raise ValueError(f"out_indices {tuple(out_indices)} is not sorted; expected increasing levels, e.g. {tuple(sorted(indices))}")
    return indices


class Backbone(nn.Module):
    """Stem + stages with multi-scale ``forward_features`` and an optional classifier head.

    Args:
        stem: modules run before the first stage (``nn.Identity()`` when there are none).
        stages: one module per feature level.
        stage_channels: output channels of each stage, as built.
        stage_strides: the stride each stage applies to its input (1 or 2, usually).
        in_channels: channels the stem expects.
        stem_stride: stride applied by the stem.
        head: classifier applied to the last level by ``forward``; ``None`` for a bare backbone.
        out_indices: which levels ``forward_features`` returns (default: all).
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem, ``k`` the stem and the first ``k`` stages.
        norm_eval: keep every batch norm in eval mode while training (detector fine-tuning).
        min_input_size: the smallest height/width the network takes.
    """

    # Python-side conveniences TorchScript need not compile.
    __jit_unused_properties__ = ["out_channels", "strides", "num_features"]

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        *,
        stage_channels: Sequence[int],
        stage_strides: Sequence[int],
        in_channels: int,
        stem_stride: int = 1,
        head: nn.Module | None = None,
        out_indices: Sequence[int] | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        min_input_size: int | None = None,
    ) -> None:
        super().__init__()
        if not len(stages) == len(stage_channels) == len(stage_strides):
            raise ValueError(
                f"got {len(stages)} stages, {len(stage_channels)} channel counts and {len(stage_strides)} strides; expected equal lengths"
            )
        if not -1 <= frozen_stages <= len(stages):
            raise ValueError(f"frozen_stages must be in -1..{len(stages)}, got {frozen_stages}")
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        level_strides, stride = [], stem_stride
        for step in stage_strides:
            stride *= step
            level_strides.append(stride)
        self.level_channels: tuple[int, ...] = tuple(stage_channels)
        self.level_strides: tuple[int, ...] = tuple(level_strides)
        self.out_indices = _normalize_out_indices(out_indices, len(stages))
        self.min_input_size = min_input_size if min_input_size is not None else max(level_strides)
        self._freeze()
        self.train(self.training)  # norm_eval holds from the start, not only after the first .train()

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of each map ``forward_features`` returns."""
        return tuple(self.level_channels[i] for i in self.out_indices)

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride (input pixels per output pixel) of each map ``forward_features`` returns."""
        return tuple(self.level_strides[i] for i in self.out_indices)

    @property
    def num_features(self) -> int:
        """Channels of the last level, the one the classifier head sees."""
        return self.level_channels[-1]

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem, *self.stages[: self.frozen_stages]]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    @torch.jit.unused
    def check_input(self, x: Tensor) -> None:
        """Raise a one-line ``ValueError`` for input this network cannot take."""
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a torch.Tensor of shape (N, {self.in_channels}, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point tensor, got dtype {x.dtype}; convert images with x.float()")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"input {height}x{width} is smaller than this network takes; expected height and width >= {self.min_input_size}"
            )

    def _validate(self, x: Tensor) -> None:
        if not (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)

    @torch.jit.export
    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the levels in ``out_indices``, shallowest first."""
        self._validate(x)
        outputs: list[Tensor] = []
        last = self.out_indices[-1]
        x = self.stem(x)
        for index, stage in enumerate(self.stages):
            if index <= last:  # stages past the deepest requested level are not run
                x = stage(x)
                if index in self.out_indices:
                    outputs.append(x)
        return outputs

    def forward_levels(self, x: Tensor) -> Tensor:
        """The last (deepest) feature map, whatever ``out_indices`` says."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits when the model has a head, else the deepest feature map (stride 32)."""
        self._validate(x)
        x = self.forward_levels(x)
        if self.head is not None:
            x = self.head(x)
        return x
