"""A supernet that covers an op-per-layer space exactly: every member is one path of it.

For an ``OpSpace`` over the ``nasbench_mb`` family (``get_space("nasbench_mb")``: 4 layers x 5 ops,
625 members) the supernet is the member network of ``create_model`` with each searchable layer
replaced by a ``MixedOp`` holding every op of the layer's decision, in the decision's order. The stem,
the fixed stride-2 reductions, the head conv and the classifier are the member's own modules, so the
parameter names are the member's: ``stages.{s}.layers.{j}.ops.{k}.*`` in the supernet is
``stages.{s}.layers.{j}.*`` of the member choosing op ``k`` there (a ``skip`` has no parameters, as
the member's ``nn.Identity`` has none). ``extract`` renames exactly that, so a path's weights and
batch-norm state load strictly into ``create_model(base, num_classes, in_channels, **architecture)``
and give the same outputs as the supernet's path forward.

Two forwards:

- a single path, ``supernet(x, indices=...)`` (or the path set with ``set_path``): SPOS, FairNAS,
  few-shot NAS and scoring;
- a weighted mixture, ``supernet(x, weights=w)`` with ``w`` of shape (layers, ops): DARTS's
  ``sum_i w_i * op_i(x)`` per layer (Liu et al. 2019, https://arxiv.org/abs/1806.09055).

``check_coverage`` refuses, in one line naming the decision, a space that one such network cannot hold.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.layers import init_weights
from vision_backbones.layers.drop_path import drop_path_rates
from vision_backbones.registry import create_model, get_entry
from vision_backbones.search.spaces import OpSpace, SearchSpace

FAMILY = "nasbench_mb"  # the op-per-layer family (``models.nasbench_mb``: ``make_op``, ``OPS``)
_OP_KEY = re.compile(r"^(stages\.\d+\.layers\.\d+)\.ops\.(\d+)\.(.+)$")


def check_coverage(space: SearchSpace) -> OpSpace:
    """``space`` if one supernet covers it exactly; otherwise a one-line ``ValueError`` naming the decision."""
    if not isinstance(space, OpSpace):
        first = space.decisions[0].name if space.decisions else "(none)"
        raise ValueError(
            f"space {space.name!r} is a {type(space).__name__} (decision {first} is not an op of a layer); "
            f"an op supernet covers an OpSpace over the {FAMILY!r} family, e.g. 'nasbench_mb'"
        )
    family = get_entry(space.base).family
    if family != FAMILY:
        raise ValueError(
            f"space {space.name!r}: decision ops[0] picks ops of {space.base!r}, a {family!r} model; "
            f"an op supernet holds the ops of the {FAMILY!r} family"
        )
    zeros = (0,) * len(space.decisions)
    fixed = {k: v for k, v in space.architecture(zeros).items() if k != "ops"}
    for position, decision in enumerate(space.decisions):
        for choice in range(1, len(decision.choices)):
            member = tuple(choice if i == position else 0 for i in range(len(zeros)))
            varying = sorted(k for k, v in space.architecture(member).items() if k != "ops" and fixed.get(k) != v)
            varying += sorted(set(fixed) - set(space.architecture(member)))
            if varying:
                raise ValueError(
                    f"space {space.name!r}: decision {decision.name} changes {', '.join(varying)}; a supernet shares "
                    "one network between members, so expected only 'ops' to vary"
                )
    return space


class MixedOp(nn.Module):
    """Every op of one searchable layer (``ops[k]`` is choice ``k``); runs one of them or a weighted sum."""

    def __init__(self, names: Sequence[str], channels: int, drop_path: float = 0.0) -> None:
        from vision_backbones.models.nasbench_mb import make_op

        super().__init__()
        self.names = tuple(names)
        self.ops = nn.ModuleList([make_op(name, channels, drop_path) for name in self.names])

    def forward(self, x: Tensor, choice: int | Tensor) -> Tensor:
        """Op ``choice`` (an int), or ``sum_k choice[k] * ops[k](x)`` for a weight vector."""
        if isinstance(choice, int):
            out: Tensor = self.ops[choice](x)
            return out
        mixed: Tensor = sum((w * op(x) for w, op in zip(choice, self.ops)), torch.zeros_like(x))
        return mixed


class OpSupernet(nn.Module):
    """``create_model``'s member network with every searchable layer a ``MixedOp`` (module docstring).

    Built with the global generator (``torch.manual_seed`` first for reproducible weights).
    """

    def __init__(self, space: SearchSpace, *, num_classes: int = 10, in_channels: int | None = None) -> None:
        super().__init__()
        self.space = check_coverage(space)
        self.num_classes = num_classes
        self.in_channels = space.in_channels if in_channels is None else in_channels
        first = (0,) * len(space.decisions)
        template = create_model(space.base, num_classes=num_classes, in_channels=self.in_channels, **self._arch(first))
        config = dataclasses.replace(get_entry(space.base).config, **space.architecture(first))
        rates = iter(drop_path_rates(config.drop_path_rate, len(config.ops)))
        decisions = iter(space.decisions)
        self.stem: nn.Module = template.stem
        self.stages: Any = template.stages  # ModuleList of nasbench_mb.OpStage: reduction, layers
        self.head_conv: nn.Module | None = template.head_conv
        self.head: Any = template.head
        stage: Any
        for stage, width in zip(self.stages, config.widths):
            for j in range(len(stage.layers)):
                stage.layers[j] = MixedOp(next(decisions).choices, width, next(rates))
        init_weights(self)  # the initialisation create_model gives a member
        self.path: tuple[int, ...] = first

    @property
    def layers(self) -> list[MixedOp]:
        """The searchable layers, one per decision, in order."""
        return [layer for stage in self.stages for layer in stage.layers]

    def _arch(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.space.architecture(indices)

    def check_path(self, indices: Sequence[int]) -> tuple[int, ...]:
        """``indices`` as a tuple, or one line saying why it is not a member (wrong length, out of range)."""
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
            raise ValueError(f"path {indices!r}: expected a sequence of {len(self.space.decisions)} choice indices")
        return self.space.check_indices(list(indices))

    def set_path(self, indices: Sequence[int]) -> None:
        """Run the member ``indices`` when ``forward`` gets neither ``indices`` nor ``weights``."""
        self.path = self.check_path(indices)

    def forward(self, x: Tensor, *, indices: Sequence[int] | None = None, weights: Tensor | None = None) -> Tensor:
        """Logits of one path (``indices``, default ``self.path``) or of the mixture ``weights`` (layers x ops)."""
        choices: Sequence[int | Tensor]
        if weights is not None:
            if weights.ndim != 2 or weights.shape[0] != len(self.space.decisions):
                raise ValueError(
                    f"weights of shape {tuple(weights.shape)}; expected ({len(self.space.decisions)}, ops)"
                )
            choices = list(weights)
        else:
            choices = self.path if indices is None else self.check_path(indices)
        x = self.stem(x)
        position = 0
        for stage in self.stages:
            x = stage.reduction(x)
            for layer in stage.layers:
                x = layer(x, choices[position])
                position += 1
        if self.head_conv is not None:
            x = self.head_conv(x)
        logits: Tensor = self.head(x)
        return logits

    # ------------------------------------------------------------------ paths as create_model networks
    def path_network(self, indices: Sequence[int]) -> nn.Sequential:
        """The path's modules in order, shared with the supernet (training or scoring touches only them)."""
        choices = iter(self.check_path(indices))
        modules: list[nn.Module] = [self.stem]
        for stage in self.stages:
            modules.append(stage.reduction)
            modules += [layer.ops[next(choices)] for layer in stage.layers]
        if self.head_conv is not None:
            modules.append(self.head_conv)
        return nn.Sequential(*modules, self.head)

    def extract(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The path's parameters and buffers (batch-norm statistics included) under ``create_model``'s names."""
        indices = self.check_path(indices)
        chosen: dict[str, int] = {}
        position = 0
        for s, stage in enumerate(self.stages):
            for j in range(len(stage.layers)):
                chosen[f"stages.{s}.layers.{j}"] = indices[position]
                position += 1
        state: dict[str, Tensor] = {}
        for key, value in self.state_dict().items():
            match = _OP_KEY.match(key)
            if match is None:
                state[key] = value.detach().clone()
            elif int(match.group(2)) == chosen[match.group(1)]:
                state[f"{match.group(1)}.{match.group(3)}"] = value.detach().clone()
        return state

    def build_path(self, indices: Sequence[int]) -> nn.Module:
        """``create_model(base, num_classes, in_channels, **space.architecture(indices))`` with this path's weights."""
        indices = self.check_path(indices)
        model = create_model(
            self.space.base, num_classes=self.num_classes, in_channels=self.in_channels, **self._arch(indices)
        )
        load_path_into(model, self.extract(indices))
        return model


def load_path_into(model: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    """Load a path's state (``OpSupernet.extract`` or a saved file) strictly into ``model``; returns it."""
    model.load_state_dict(dict(state), strict=True)
    return model
