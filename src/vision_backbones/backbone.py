"""The one contract every backbone follows: a stem, a list of stages, and multi-scale outputs.

A backbone is ``stem -> stages[0] -> ... -> stages[-1] [-> head_conv]``. The stem is whatever a
network does before its first feature level (often nothing); each stage ends at one feature level,
normally halving the resolution, so five stages give the levels at strides 2, 4, 8, 16, 32. Mobile
networks end with a 1x1 ``head_conv`` (EfficientNet's 1280 channels); by default it belongs to the
last level, as in the published parameter tables, and ``include_head_conv=False`` makes the last level
the last block's output (EfficientNet-B0: 320 channels) and moves the conv to the classifier path.

``level_channels`` and ``level_strides`` are *measured* from the built modules (``shapes.measure_levels``:
a forward on the meta device at two input sizes), never written by hand, so a detector neck can size
itself without running the model (the detectron2 ``output_shape`` idea). A family builds
``(stem, stages, head)``; ``create_model`` then applies the level selection, pruning, freezing,
``norm_eval``, ``output_stride`` and gradient checkpointing through ``configure``.

Every forward of every family goes through one loop, ``_run_levels``: it runs the stages up to the
deepest level a caller needs, keeps only the maps it was asked for (a classification forward keeps
none: holding every stage's output until the head cost thousands of page faults per forward), and
checkpoints each stage when gradient checkpointing is on. A family whose stages pass more than one
map along (NASNet's cells read the two previous outputs, Zoph-Le's layers read any earlier one)
overrides ``_begin`` and ``_level`` only: the state a stage takes and returns, and the level map in it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Union

import torch
from torch import Tensor, nn

from vision_backbones.batch_norm import running_stats_restored
from vision_backbones.dilation import dilate
from vision_backbones.family import Preprocessing
from vision_backbones.shapes import (
    FeatureInfo,
    ShapeSpec,
    indices_from_strides,
    measure_levels,
    normalize_out_indices,
    take_indices,
)

_BatchNorm = nn.modules.batchnorm._BatchNorm


def _first_parameter(module: nn.Module) -> nn.Parameter | None:
    """``next(module.parameters(), None)`` without its generators (~25 Python frames per forward)."""
    pending: list[nn.Module | None] = [module]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        for parameter in current._parameters.values():
            if parameter is not None:
                return parameter
        pending.extend(reversed(current._modules.values()))
    return None


class Backbone(nn.Module):
    """Stem + stages (+ optional head conv) with multi-scale ``forward_features`` and an optional head.

    The forward surface (timm's names, one meaning each):

    - ``forward(x)``: logits (classifier) or the selected maps (features model).
    - ``forward_features(x)``: the maps of ``out_indices`` as a list, shallowest first (the detector
      contract; timm returns one tensor here). ``forward_head`` takes that list as well as a map and
      uses its last, deepest map, so timm's ``forward_head(forward_features(x))`` equals ``forward(x)``.
    - ``forward_intermediates(x, indices, norm, stop_early, intermediates_only)``: levels picked per
      call, with timm's arguments and ``(final map, [maps])`` result.
    - ``forward_head(x, pre_logits=False)``: the head alone, on the deepest map.

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
    preprocessing: Preprocessing | None = None  # set by create_model from the family's declaration
    # Python-side conveniences TorchScript need not compile (it cannot type the Preprocessing dataclass).
    __jit_ignored_attributes__ = ["preprocessing"]  # noqa: RUF012  (read by TorchScript, never mutated)
    __jit_unused_properties__ = [  # noqa: RUF012  (read by TorchScript, never mutated)
        "out_channels",
        "strides",
        "num_features",
        "out_indices",
        "feature_info",
        "out_names",
        "level_names",
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
        # A list, not a tuple: TorchScript types a tuple attribute by its length, and the loop takes a list.
        self._out_indices: list[int] = list(range(len(self.stages)))
        self._pruned_prefixes: tuple[str, ...] = ()
        self._fc_in_features = 0  # the classifier's input width, kept while reset_classifier(0) removes it

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
        return tuple(self._out_indices)

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
                {
                    "num_chs": self.level_channels[i],
                    "reduction": self.level_strides[i],
                    "module": module,
                    "name": self.level_names[i],
                    "index": i,
                }
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
        for flag, value in (
            ("features_only", features_only),
            ("norm_eval", norm_eval),
            ("include_head_conv", include_head_conv),
            ("grad_checkpointing", grad_checkpointing),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
        if out_indices is not None and out_strides is not None:
            raise ValueError(f"give out_indices {tuple(out_indices)} or out_strides {tuple(out_strides)}, not both")
        if not include_head_conv:
            if self.head_conv is None:
                raise ValueError(
                    f"include_head_conv=False: {type(self).__name__} has no head conv; expected the default True"
                )
            self.head_conv_level = False
            self._measure()
            self._nominal_strides = self.level_strides
        if output_stride is not None:
            dilate(self, output_stride)
        num_levels = len(self.stages)
        if out_strides is not None:
            indices = indices_from_strides(out_strides, self._nominal_strides)
        else:
            indices = normalize_out_indices(out_indices, num_levels)
        self._out_indices = list(indices)
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
                raise ValueError(
                    f"give frozen_stages {frozen_stages} or freeze_until_stride {freeze_until_stride}, not both"
                )
            built = self._nominal_strides[: len(self.stages)]
            if freeze_until_stride not in built:
                raise ValueError(
                    f"freeze_until_stride={freeze_until_stride!r} is not a level stride; expected one of {tuple(built)}"
                )
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
            raise ValueError(
                "gradient checkpointing is on; TorchScript cannot compile it: call set_grad_checkpointing(False) first"
            )
        return self

    @torch.jit.unused
    def get_classifier(self) -> nn.Module:
        """The final linear layer (timm's ``get_classifier``)."""
        if self.head is None:
            raise ValueError(
                "this model has no classifier (features_only=True); expected a model built with num_classes"
            )
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
    def forward_head(self, x: Tensor | Sequence[Tensor], pre_logits: bool = False) -> Tensor:
        """Logits from the deepest level's map (``pre_logits``: the pooled features before ``fc``).

        ``x`` is that map, or the list ``forward_features`` returns (its last map is the deepest
        level when ``out_indices`` includes it), so timm's ``forward_head(forward_features(x))`` works.
        """
        if self.head is None:
            raise ValueError(
                "this model has no classifier (features_only=True); expected a model built with num_classes"
            )
        if not isinstance(x, Tensor):
            deepest = len(self.stages) - 1
            if not isinstance(x, (list, tuple)) or not x or not all(isinstance(m, Tensor) for m in x):
                raise ValueError(f"forward_head takes a map or forward_features' list of maps, got {type(x).__name__}")
            if self._out_indices[-1] != deepest:
                raise ValueError(
                    f"forward_head got the maps of out_indices {tuple(self._out_indices)}; the head reads level {deepest}, "
                    f"expected forward_features of a model whose out_indices end at {deepest}"
                )
            x = x[-1]
        if self.head_conv is not None and not self.head_conv_level:
            x = self.head_conv(x)
        if pre_logits:
            return self.head.pre_logits(x)  # type: ignore[operator]
        return self.head(x)

    @torch.jit.unused
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's ``forward_intermediates``: level maps picked per call, with or without the final map.

        Args:
            indices: ``None`` every built level, an int ``n`` the last ``n`` levels, or level indices
                (negative ones count from the end). Independent of ``out_indices``.
            norm: accepted for timm's signature. These conv nets have no norm after their last level
                (a final norm, where a family has one, is part of the level), so it changes nothing.
            stop_early: stop after the deepest requested level; the "final" map returned is then that
                level's (timm's meaning). Stages past it never run when ``intermediates_only``.
            intermediates_only: return only the list of maps.

        Returns ``[maps]`` shallowest first, or ``(final map, [maps])``; the final map is what
        ``forward_head`` takes (the deepest level, before a head conv that is not part of a level).
        """
        self._validate(x)
        if not isinstance(norm, bool) or not isinstance(stop_early, bool) or not isinstance(intermediates_only, bool):
            raise ValueError(
                f"norm, stop_early and intermediates_only must be True or False, got {norm!r}, {stop_early!r}, {intermediates_only!r}"
            )
        taken = take_indices(indices, len(self.stages))
        stop = taken[-1] if stop_early or intermediates_only else len(self.stages) - 1
        final, maps = self._run_levels(x, list(taken), stop)
        return maps if intermediates_only else (final, maps)

    # ------------------------------------------------------------------ input
    @torch.jit.unused
    def check_input(self, x: Tensor) -> None:
        """Raise a one-line ``ValueError`` for input this network cannot take.

        A meta tensor asks about its size only: it is not held to the model's device (``forward`` does).
        """
        self._check_input(x, running=False)

    @torch.jit.unused
    def _check_input(self, x: Tensor, *, running: bool) -> None:
        if isinstance(x, torch.fx.Proxy):
            return  # symbolic tracing: shapes are unknown
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a torch.Tensor of shape (N, {self.in_channels}, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point tensor, got dtype {x.dtype}; convert images with x.float()")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        weight = _first_parameter(self)
        if weight is not None:
            if x.dtype != weight.dtype and weight.is_floating_point() and not torch.is_autocast_enabled(x.device.type):
                raise ValueError(
                    f"input dtype {x.dtype} differs from the model's parameters ({weight.dtype}); "
                    f"expected x.to({weight.dtype}) or the model converted with .to({x.dtype})"
                )
            if x.device != weight.device and (running or not x.is_meta):
                raise ValueError(
                    f"input on device {x.device} but the model's parameters are on {weight.device}; expected x.to({str(weight.device)!r})"
                )
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
            self._check_input(x, running=True)

    # ---------------------------------------------------------------- forward
    def _begin(self, x: Tensor) -> Tensor:
        """The state the first stage takes, from the stem's output (a family carrying more overrides it)."""
        return x

    def _level(self, state: Tensor) -> Tensor:
        """The level map in a stage's output state."""
        return state

    @torch.jit.unused
    def _checkpointed(self, index: int, state: Any) -> Any:
        stage = self.stages[index]

        def contexts() -> tuple[contextlib.AbstractContextManager[None], contextlib.AbstractContextManager[None]]:
            # The recomputation must not count the batch twice in the running statistics.
            return contextlib.nullcontext(), running_stats_restored(stage)

        return torch.utils.checkpoint.checkpoint(stage, state, use_reentrant=False, context_fn=contexts)

    def _run_levels(self, x: Tensor, keep: list[int], stop: int) -> tuple[Tensor, list[Tensor]]:
        """The one stage loop: ``(map of level stop, [maps of the levels in keep])``.

        Stages past ``stop`` do not run, and no map outside ``keep`` outlives the next stage.
        """
        kept: list[Tensor] = []
        last = len(self.stages) - 1
        state = self._begin(self.stem(x))
        level = self._level(state)
        for index, stage in enumerate(self.stages):
            if index <= stop:  # stages past the deepest level needed are not run
                if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                    state = self._checkpointed(index, state)
                else:
                    state = stage(state)
                level = self._level(state)
                if index == last and self.head_conv_level and self.head_conv is not None:
                    level = self.head_conv(level)
                if index in keep:
                    kept.append(level)
        return level, kept

    @torch.jit.unused
    def _run_levels_tapped(self, x: Tensor, taps: Sequence[nn.Module], stop: int) -> tuple[Tensor, list[Tensor]]:
        """``_run_levels`` that also returns the outputs of ``taps``, modules inside the stages.

        The hook for auxiliary heads that read a map in the middle of a stage (GoogLeNet's 4a and 4d):
        the family names the modules, the one loop (checkpointing included) runs. Python only.
        """
        tapped: dict[int, Tensor] = {}

        def keeper(index: int) -> Any:
            def hook(module: nn.Module, args: Any, output: Tensor) -> None:
                tapped.setdefault(index, output)  # first pass only: a checkpoint's recomputation runs it again

            return hook

        handles = [module.register_forward_hook(keeper(i)) for i, module in enumerate(taps)]
        try:
            final = self._run_levels(x, [], stop)[0]
        finally:
            for handle in handles:
                handle.remove()
        if len(tapped) != len(taps):
            raise ValueError(
                f"{len(taps) - len(tapped)} of {len(taps)} tapped modules did not run; expected modules of stages 0..{stop}"
            )
        return final, [tapped[i] for i in range(len(taps))]

    @torch.jit.export
    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the levels in ``out_indices``, shallowest first."""
        self._validate(x)
        return self._run_levels(x, self._out_indices, self._out_indices[-1])[1]

    def forward(self, x: Tensor) -> Union[Tensor, list[Tensor]]:  # noqa: UP007  (TorchScript)
        """The selected maps (a list) for a features model; else logits from the deepest level."""
        self._validate(x)
        if self.features_only or self.head is None:
            return self._run_levels(x, self._out_indices, self._out_indices[-1])[1]
        x = self._run_levels(x, [], len(self.stages) - 1)[0]  # the deepest map only: no other level kept alive
        if self.head_conv is not None and not self.head_conv_level:
            x = self.head_conv(x)
        return self.head(x)
