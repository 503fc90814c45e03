"""The one contract every backbone follows: a stem, a list of stages, and multi-scale outputs.

A backbone is ``stem -> stages[0] -> ... -> stages[-1] [-> head_conv]``. The stem is whatever a
network does before its first feature level (often nothing); each stage ends at one feature level,
normally halving the resolution, so five stages give the levels at strides 2, 4, 8, 16, 32. Mobile
networks end with a 1x1 ``head_conv`` (EfficientNet's 1280 channels); by default it belongs to the
last level, as in the published parameter tables, and ``include_head_conv=False`` makes the last level
the last block's output (EfficientNet-B0: 320 channels) and moves the conv to the classifier path.

``level_channels`` and ``level_strides`` are *measured* from the built modules (a forward on the meta
device at two input sizes: stride = change of input size / change of output size), never written by
hand, so a detector neck can size itself without running the model (the detectron2 ``output_shape``
idea). A family builds ``(stem, stages, head)``; ``create_model`` then applies the level selection,
pruning, freezing, ``norm_eval``, ``output_stride`` and gradient checkpointing through ``configure``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor, nn

_BatchNorm = nn.modules.batchnorm._BatchNorm


class ClassifierHead(nn.Module):
    """Global average pool, optional hidden layer, dropout, then a linear classifier ``fc``."""

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

    def pre_logits(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, C)
        if self.hidden is not None:
            x = self.hidden(x)
        return self.dropout(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pre_logits(x))


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride of one output level (detectron2's ``ShapeSpec`` fields)."""

    channels: int
    stride: int
    height: int | None = None
    width: int | None = None


class FeatureInfo:
    """timm-style description of the returned levels: ``channels()``, ``reduction()``, ``module_name()``."""

    def __init__(self, levels: Sequence[dict[str, Any]]) -> None:
        self.info = [dict(level) for level in levels]

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [level[key] for level in self.info]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("module", idx)

    def names(self) -> list[str]:
        return self._get("name", None)

    def get_dicts(self) -> list[dict[str, Any]]:
        return [dict(level) for level in self.info]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info})"


def _normalize_out_indices(out_indices: Sequence[int] | None, num_levels: int) -> tuple[int, ...]:
    if out_indices is None:
        return tuple(range(num_levels))
    if isinstance(out_indices, int) or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
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


def _indices_from_strides(out_strides: Sequence[int], nominal: Sequence[int]) -> tuple[int, ...]:
    if isinstance(out_strides, int) or not all(isinstance(s, int) for s in out_strides) or not out_strides:
        raise ValueError(f"out_strides must be a non-empty sequence of ints such as (8, 16, 32), got {out_strides!r}")
    missing = [s for s in out_strides if s not in nominal]
    if missing:
        raise ValueError(f"out_strides {tuple(out_strides)}: {missing} not available; this model has levels at strides {tuple(nominal)}")
    return _normalize_out_indices([list(nominal).index(s) for s in out_strides], len(nominal))


class _Levels(nn.Module):
    """Every built level of ``backbone`` (its own ``_run_levels``): what the stride probe runs."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.backbone._run_levels(x, False)


_MEASURED: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}


def measure_levels(backbone: Backbone, base_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(channels, strides)`` of every built level, measured by two forwards on the meta device.

    The two inputs differ by 128 pixels, a multiple of every stride, so each layer's output size
    changes by exactly the input change over its stride, padded ("same") or not (Inception's "valid").
    """
    # Shapes depend only on the structure, which the module tree's repr spells out (every conv's
    # channels, kernel, stride, padding, dilation; every pool; every class): the probe runs once per structure.
    key = (type(backbone).__qualname__, repr(backbone.stem), repr(backbone.stages), repr(backbone.head_conv),
           backbone.head_conv_level, backbone.in_channels, base_size)
    if key in _MEASURED:
        return _MEASURED[key]
    probe = _Levels(backbone)
    tensors = {name: torch.empty_like(t, device="meta") for name, t in probe.state_dict(keep_vars=True).items()}
    sizes = (base_size, base_size + 128)
    outputs = []
    modes = {module: module.training for module in probe.modules()}
    probe.eval()  # eval-mode batch norm is the cheap path on the meta device
    try:
        with torch.no_grad():
            for size in sizes:
                x = torch.empty(1, backbone.in_channels, size, size, device="meta")
                outputs.append(torch.func.functional_call(probe, tensors, (x,), strict=False, tie_weights=False))
    finally:
        for module, mode in modes.items():
            module.training = mode
    channels, strides = [], []
    for small, large in zip(*outputs):
        change = large.shape[-1] - small.shape[-1]
        if change <= 0 or 128 % change:
            raise ValueError(f"level output size does not scale with the input ({small.shape[-1]} -> {large.shape[-1]} px)")
        channels.append(int(small.shape[1]))
        strides.append(128 // change)
    if len(_MEASURED) > 512:
        _MEASURED.clear()
    _MEASURED[key] = (tuple(channels), tuple(strides))
    return _MEASURED[key]


@contextlib.contextmanager
def _running_stats_restored(module: nn.Module) -> Iterator[None]:
    """Batch norms run exactly as in the first pass, then get their running statistics back, so a
    checkpoint's recomputation does not count the batch twice."""
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (n.running_mean, n.running_var, n.num_batches_tracked)] for n in norms]
    try:
        yield
    finally:
        for norm, (mean, var, count) in zip(norms, saved):
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
            norm.num_batches_tracked.copy_(count)


class Backbone(nn.Module):
    """Stem + stages (+ optional head conv) with multi-scale ``forward_features`` and an optional head.

    Args:
        stem: modules run before the first stage (``nn.Identity()`` when there are none).
        stages: one module per feature level.
        in_channels: channels the stem expects.
        head: classifier applied to the last level by ``forward``; ``None`` for a bare backbone.
        head_conv: a 1x1 conv that mobile networks run after the last stage, before the head.
        min_input_size: the smallest height/width the network takes (default: its deepest stride).
        supports_output_stride: the class attribute a family sets when ``output_stride`` works for it.
    """

    supports_output_stride: bool = False
    # Python-side conveniences TorchScript need not compile.
    __jit_unused_properties__ = [
        "out_channels", "strides", "num_features", "out_indices", "feature_info", "out_names", "level_names",
    ]

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        *,
        in_channels: int,
        head: nn.Module | None = None,
        head_conv: nn.Module | None = None,
        min_input_size: int | None = None,
    ) -> None:
        super().__init__()
        if len(stages) == 0:
            raise ValueError("a backbone needs at least one stage")
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head_conv = head_conv
        self.head = head
        self.in_channels = in_channels
        self.head_conv_level = head_conv is not None
        self.features_only = False
        self.frozen_stages = -1
        self.norm_eval = False
        self.grad_checkpointing = False
        self.output_stride: int | None = None
        self._min_input_size = min_input_size
        self._measure()
        self._nominal_strides = self.level_strides
        self._out_indices = tuple(range(len(self.stages)))
        self._pruned_prefixes: tuple[str, ...] = ()

    # ----------------------------------------------------------------- levels
    def probe_size(self) -> int:
        """The smaller input of the stride probe: at least 64 px and the minimum size, a multiple of 64."""
        return -(-max(64, self._min_input_size or 0) // 64) * 64

    def _measure(self) -> None:
        self.level_channels, self.level_strides = measure_levels(self, self.probe_size())
        if self._min_input_size is None:
            self._min_input_size = max(self.level_strides)

    @property
    def min_input_size(self) -> int:
        return self._min_input_size  # type: ignore[return-value]

    @property
    def level_names(self) -> tuple[str, ...]:
        """``"stride8"``-style names of every built level, from the undilated strides."""
        return tuple(f"stride{s}" for s in self._nominal_strides[: len(self.level_strides)])

    @property
    def out_indices(self) -> tuple[int, ...]:
        """Levels ``forward_features`` returns (fixed at construction: the model is built for them)."""
        return self._out_indices

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of each map ``forward_features`` returns."""
        return tuple(self.level_channels[i] for i in self._out_indices)

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride (input pixels per output pixel) of each map ``forward_features`` returns."""
        return tuple(self.level_strides[i] for i in self._out_indices)

    @property
    def out_names(self) -> tuple[str, ...]:
        return tuple(self.level_names[i] for i in self._out_indices)

    @property
    def num_features(self) -> int:
        """Channels the classifier head pools (the head conv's output when there is one)."""
        if self.head_conv is not None and not self.head_conv_level:
            return self.head_conv.out_channels  # type: ignore[return-value]
        return self.level_channels[-1]

    @property
    def feature_info(self) -> FeatureInfo:
        levels = []
        last = len(self.stages) - 1
        for i in self._out_indices:
            module = "head_conv" if i == last and self.head_conv is not None and self.head_conv_level else f"stages.{i}"
            levels.append(
                {"num_chs": self.level_channels[i], "reduction": self.level_strides[i], "module": module,
                 "name": self.level_names[i], "index": i}
            )
        return FeatureInfo(levels)

    def output_shape(self) -> dict[str, ShapeSpec]:
        """``name -> ShapeSpec(channels, stride)`` of every returned level (detectron2's contract)."""
        return {
            self.level_names[i]: ShapeSpec(channels=self.level_channels[i], stride=self.level_strides[i])
            for i in self._out_indices
        }

    # ------------------------------------------------------------ configuring
    def configure(
        self,
        *,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        out_strides: Sequence[int] | None = None,
        frozen_stages: int = -1,
        freeze_until_stride: int | None = None,
        norm_eval: bool = False,
        output_stride: int | None = None,
        include_head_conv: bool = True,
        grad_checkpointing: bool = False,
    ) -> Backbone:
        """Apply ``create_model``'s generic options once, right after the family built the model."""
        for flag, value in (("features_only", features_only), ("norm_eval", norm_eval),
                            ("include_head_conv", include_head_conv), ("grad_checkpointing", grad_checkpointing)):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
        if out_indices is not None and out_strides is not None:
            raise ValueError(f"give out_indices {tuple(out_indices)} or out_strides {tuple(out_strides)}, not both")
        if not include_head_conv:
            if self.head_conv is None:
                raise ValueError(f"include_head_conv=False: {type(self).__name__} has no head conv; expected the default True")
            self.head_conv_level = False
            self._measure()
            self._nominal_strides = self.level_strides
        if output_stride is not None:
            from vision_backbones.dilation import dilate

            dilate(self, output_stride)
        num_levels = len(self.stages)
        if out_strides is not None:
            indices = _indices_from_strides(out_strides, self._nominal_strides)
        else:
            indices = _normalize_out_indices(out_indices, num_levels)
        self._out_indices = indices
        if features_only:
            self.features_only = True
            self.head = None
            keep = indices[-1] + 1
            dropped = [f"stages.{i}." for i in range(keep, num_levels)]
            if keep < num_levels:  # levels past the deepest requested one are not kept
                self.stages = nn.ModuleList(list(self.stages)[:keep])
                self.head_conv_level = False
                self.level_channels, self.level_strides = self.level_channels[:keep], self.level_strides[:keep]
            if self.head_conv is not None and not self.head_conv_level:
                self.head_conv = None  # pruned, or it runs only on the classifier path
                dropped.append("head_conv.")
            self._pruned_prefixes = tuple(dropped)
        if freeze_until_stride is not None:
            if frozen_stages != -1:
                raise ValueError(f"give frozen_stages {frozen_stages} or freeze_until_stride {freeze_until_stride}, not both")
            built = self._nominal_strides[: len(self.stages)]
            if freeze_until_stride not in built:
                raise ValueError(f"freeze_until_stride={freeze_until_stride!r} is not a level stride; expected one of {tuple(built)}")
            frozen_stages = list(built).index(freeze_until_stride) + 1
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= len(self.stages):
            raise ValueError(f"frozen_stages must be an int in -1..{len(self.stages)}, got {frozen_stages!r}")
        self.frozen_stages = frozen_stages
        self.norm_eval = bool(norm_eval)
        self._freeze()
        self.set_grad_checkpointing(grad_checkpointing)
        self.train(self.training)  # norm_eval holds from the start, not only after the first .train()
        return self

    @torch.jit.unused
    def pruned_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of the full model that this features model left out (recorded when pruning)."""
        return self._pruned_prefixes

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem, *list(self.stages)[: self.frozen_stages]]

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
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    # --------------------------------------------------------- timm-style API
    @torch.jit.unused
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in the backward pass instead of keeping its activations."""
        if not isinstance(enable, bool):
            raise ValueError(f"set_grad_checkpointing takes True or False, got {enable!r}")
        self.grad_checkpointing = enable

    def __prepare_scriptable__(self) -> Backbone:
        if self.grad_checkpointing:
            raise ValueError("gradient checkpointing is on; TorchScript cannot compile it: call set_grad_checkpointing(False) first")
        return self

    @torch.jit.unused
    def get_classifier(self) -> nn.Module:
        """The final linear layer (timm's ``get_classifier``)."""
        if self.head is None:
            raise ValueError("this model has no classifier (features_only=True); expected a model built with num_classes")
        return self.head.fc  # type: ignore[return-value]

    @torch.jit.unused
    def reset_classifier(self, num_classes: int) -> None:
        """A fresh final linear layer for ``num_classes`` (0: none, ``forward`` returns pooled features)."""
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        fc = self.get_classifier()
        in_features = fc.in_features if isinstance(fc, nn.Linear) else self._fc_in_features
        self._fc_in_features = in_features
        self.head.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()  # type: ignore[union-attr]

    @torch.jit.unused
    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits from the deepest level's map (``pre_logits``: the pooled features before ``fc``)."""
        if self.head is None:
            raise ValueError("this model has no classifier (features_only=True); expected a model built with num_classes")
        if self.head_conv is not None and not self.head_conv_level:
            x = self.head_conv(x)
        if pre_logits:
            return self.head.pre_logits(x)  # type: ignore[operator]
        return self.head(x)

    # ------------------------------------------------------------------ input
    @torch.jit.unused
    def check_input(self, x: Tensor) -> None:
        """Raise a one-line ``ValueError`` for input this network cannot take."""
        if isinstance(x, torch.fx.Proxy):
            return  # symbolic tracing: shapes are unknown
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
        deepest = self.level_strides[-1]
        single = x.shape[0] == 1 and math.ceil(height / deepest) * math.ceil(width / deepest) <= 1
        if single and self.training and any(isinstance(m, _BatchNorm) and m.training for m in self.modules()):
            raise ValueError(
                f"a batch of 1 image of {height}x{width} leaves batch norm one value per channel at the deepest level; "
                f"expected a batch of at least 2 or images larger than {self.level_strides[-1]} px"
            )

    def _validate(self, x: Tensor) -> None:
        if not (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)

    # ---------------------------------------------------------------- forward
    @torch.jit.unused
    def _checkpointed(self, index: int, x: Tensor) -> Tensor:
        stage = self.stages[index]

        def contexts() -> tuple[contextlib.AbstractContextManager[None], contextlib.AbstractContextManager[None]]:
            # The recomputation must not count the batch twice in the running statistics.
            return contextlib.nullcontext(), _running_stats_restored(stage)

        return torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False, context_fn=contexts)

    def _run_levels(self, x: Tensor, selected: bool) -> list[Tensor]:
        outputs: list[Tensor] = []
        last_stage = len(self.stages) - 1
        deepest = self._out_indices[-1] if selected else last_stage
        x = self.stem(x)
        for index, stage in enumerate(self.stages):
            if index <= deepest:  # stages past the deepest requested level are not run
                if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                    x = self._checkpointed(index, x)
                else:
                    x = stage(x)
                if index == last_stage and self.head_conv_level and self.head_conv is not None:
                    x = self.head_conv(x)
                if not selected or index in self._out_indices:
                    outputs.append(x)
        return outputs

    @torch.jit.export
    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the levels in ``out_indices``, shallowest first."""
        self._validate(x)
        return self._run_levels(x, True)

    def forward(self, x: Tensor) -> Union[Tensor, list[Tensor]]:  # noqa: UP007  (TorchScript)
        """The selected maps (a list) for a features model; else logits from the deepest level."""
        self._validate(x)
        if self.features_only or self.head is None:
            return self._run_levels(x, True)
        x = self._run_levels(x, False)[-1]
        if self.head_conv is not None and not self.head_conv_level:
            x = self.head_conv(x)
        return self.head(x)


def level_table(model: Backbone) -> str:
    """One line per level: index, name, channels, stride (what docs and ``backbones info`` print)."""
    levels = zip(model.level_names, model.level_channels, model.level_strides)
    return "\n".join(f"{i}: {name} {channels} ch, stride {stride}" for i, (name, channels, stride) in enumerate(levels))

