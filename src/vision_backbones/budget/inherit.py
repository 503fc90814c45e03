"""Weight inheritance for a narrower network: NetAdapt's proposals start from the current weights.

NetAdapt (Yang et al. 2018, section 3.2.2) keeps, in a layer it narrows, the filters of largest L2
norm. The narrower network is always the one ``create_model(name, **overrides)`` builds (a registered,
rebuildable architecture), so nothing is pruned in place: Torch-Pruning's ``DependencyGraph`` finds
the coupled channel groups of the *current* network (a conv, its norm, the next conv's input channels,
depthwise convs, squeeze-excitation, every block a residual add ties, the slices of a concatenation),
``MagnitudeImportance(p=2)`` over the group's filters (the output side of every coupled conv and
norm, summed) ranks its channels, and each member that the narrower network
has fewer channels of keeps the channels of largest group importance, in their order.

A knob may change several groups (MobileNetV2's next expanded width follows a row's output) or break
one (a residual add that the narrower network no longer has): each member of a group is matched by
module name and takes its own width there. A tensor whose shape changed without a group to say which
channels keeps its leading slice: a *fallback*, listed in the report (ShuffleNet's channel shuffle,
which Torch-Pruning cannot trace, makes every changed tensor of that family one).
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

OUT, IN = "out", "in"
Removed = dict[tuple[str, str], set[int]]  # (module name, side) -> source channels dropped


@dataclass
class InheritReport:
    """What :func:`inherit_weights` did: ``kept[(module, side)]``, the source channels kept on the output
    (``"out"``) or input (``"in"``) side of each narrowed module; ``fallbacks``, the tensors that kept
    their leading slice for want of a group; ``fresh``, the tensors left at their init (absent from the
    source, or grown); ``groups``, the coupled channel groups narrowed; ``graph_error``, why Torch-Pruning
    could not trace the source (then every changed tensor is a fallback)."""

    kept: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    groups: int = 0
    graph_error: str | None = None


@dataclass
class _Group:
    root: nn.Module
    handler: Callable[..., Any]
    width: int
    ranking: list[int]  # the root's channels, most important first
    deps: list[Any]  # every dependency of the group (Torch-Pruning's ``Dependency``)


@dataclass
class ChannelGroups:
    """The coupled channel groups of one network and each group's channels ranked by L2 importance;
    built once per NetAdapt step and shared by all its proposals (:func:`channel_groups`)."""

    source: nn.Module
    graph: Any = None
    groups: list[_Group] = field(default_factory=list)
    names: dict[nn.Module, str] = field(default_factory=dict)
    error: str | None = None


MISSING = "NetAdapt's weight inheritance needs Torch-Pruning; install it (pip install 'vision-backbones[search]')"


def check_torch_pruning() -> None:
    """One line when Torch-Pruning is not installed (found, not imported: importing it takes seconds)."""
    if importlib.util.find_spec("torch_pruning") is None:
        raise ValueError(MISSING)


def torch_pruning() -> Any:
    """The Torch-Pruning module, or one line saying how to install it."""
    try:
        import torch_pruning as tp
    except ModuleNotFoundError:
        raise ValueError(MISSING) from None
    return tp


def _example_input(model: nn.Module) -> torch.Tensor:
    """A constant input the model takes (no random numbers drawn: the run's seeds stay as they were)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = getattr(model, "in_channels", None) or (first.in_channels if first is not None else 3)
    size = max(32, int(getattr(model, "min_input_size", 32) or 32))
    parameter = next(model.parameters())
    return torch.ones(1, channels, size, size, dtype=parameter.dtype, device=parameter.device)


def channel_groups(source: nn.Module) -> ChannelGroups:
    """Trace ``source`` (in eval mode: batch-norm statistics untouched) with Torch-Pruning and rank every
    conv/linear-rooted group's channels by ``MagnitudeImportance(p=2)`` of its filters. A network Torch-Pruning cannot
    trace gives no groups and the reason in ``error``."""
    tp = torch_pruning()
    found = ChannelGroups(source, names={module: name for name, module in source.named_modules()})
    training = source.training
    source.eval()
    try:
        found.graph = tp.DependencyGraph().build_dependency(
            source, example_inputs=_example_input(source), verbose=False
        )
        found.groups = _ranked_groups(found.graph)
    except Exception as error:  # Torch-Pruning's tracer fails in many ways (ShuffleNet: ZeroDivisionError)
        found.graph, found.groups, found.error = None, [], f"{type(error).__name__}: {error}"
    finally:
        source.train(training)
    return found


def _ranked_groups(graph: Any) -> list[_Group]:
    """``graph.get_all_groups()`` (one group per set of coupled output channels), each with its ranking."""
    importance = torch_pruning().importance.MagnitudeImportance(p=2)
    ranked = []
    for group in graph.get_all_groups():
        root, handler = group[0].dep.target.module, group[0].dep.handler
        scores = importance(_filters(group))
        width = graph.get_out_channels(root)
        if scores is None or width is None:
            continue
        ranking = torch.argsort(scores.float(), descending=True, stable=True).tolist()
        ranked.append(_Group(root, handler, int(width), ranking, [dep for dep, _ in group]))
    return ranked


def _filters(group: Any) -> Any:
    """The group's output-side members only (its filters and their norms' scales): NetAdapt ranks a
    layer's filters by their own L2 norm, not by the weights of the layers that read them."""
    filters = torch_pruning().dependency.Group()
    filters._DG = group._DG
    filters._group = [item for item in group.items if group._DG.is_out_channel_pruning_fn(item.dep.handler)]
    return filters


def _target_width(graph: Any, dep: Any, narrower: nn.Module) -> int | None:
    """The width the narrower network's module of the same name has on the dependency's side."""
    pruner = graph.get_pruner_of_module(dep.target.module)
    if pruner is None:
        return None
    out = graph.is_out_channel_pruning_fn(dep.handler)
    width = pruner.get_out_channels(narrower) if out else pruner.get_in_channels(narrower)
    return None if width is None else int(width)


def _members(found: ChannelGroups, group: _Group, targets: dict[str, nn.Module]) -> list[tuple[Any, int | None]]:
    """Every dependency of the group with its module's width in the narrower network (``None``: gone)."""
    members: list[tuple[Any, int | None]] = []
    for dep in group.deps:
        module = dep.target.module
        name = found.names.get(module)
        narrower = targets.get(name) if name is not None else None
        if narrower is None or type(narrower) is not type(module):
            members.append((dep, None))
        else:
            members.append((dep, _target_width(found.graph, dep, narrower)))
    return members


def _removed_channels(found: ChannelGroups, target: nn.Module, report: InheritReport) -> Removed:
    """Per ``(module name, side)`` of the source, the channels the narrower ``target`` drops: for each
    group, those of least importance, as many as each member lost (an input side follows the one
    narrower output width of its group, or its own when it equals one of several)."""
    from torch_pruning._helpers import to_plain_idxs

    targets = dict(target.named_modules())
    removed: Removed = defaultdict(set)
    for group in found.groups:
        members = _members(found, group, targets)
        widths = {w for dep, w in members if w is not None and w < group.width and _is_out(found, dep)}
        for width in sorted(widths):
            drop = sorted(group.ranking[width:])
            for dep, idxs in found.graph.get_pruning_group(group.root, group.handler, drop):
                name = found.names.get(dep.target.module)
                out = _is_out(found, dep)
                own = next((w for d, w in members if d.target is dep.target and _is_out(found, d) == out), None)
                if name is None or own is None:
                    continue
                if (out and own == width) or (not out and (len(widths) == 1 or own == width)):
                    removed[(name, OUT if out else IN)].update(int(i) for i in to_plain_idxs(idxs))
        report.groups += bool(widths)
    return removed


def _is_out(found: ChannelGroups, dep: Any) -> bool:
    return bool(found.graph.is_out_channel_pruning_fn(dep.handler))


def _dim_index(removed: Removed, name: str, module: nn.Module, dim: int, have: int, want: int) -> torch.Tensor | None:
    """The source indices along ``dim`` of module ``name``'s tensor that fill the target's ``want``
    entries (``None``: no group says which). Dim 0 is the output side; a depthwise conv's or a norm's
    output side is also its input side."""
    sides = [OUT] if dim == 0 else [IN] if dim == 1 else []
    depthwise = _conv_groups(module) > 1 and _conv_groups(module) == getattr(module, "in_channels", 0)
    if dim == 0 and (depthwise or isinstance(module, nn.modules.batchnorm._NormBase)):
        sides.append(IN)
    for side in sides:
        if (name, side) in removed:
            keep = [i for i in range(have) if i not in removed[(name, side)]]
            if len(keep) == want:
                return torch.tensor(keep, dtype=torch.long)
    return None


def _select(key: str, old: torch.Tensor, new: torch.Tensor, module: tuple[str, nn.Module], removed: Removed,
            report: InheritReport) -> torch.Tensor | None:  # fmt: skip
    """``old`` cut to ``new``'s shape along the kept channels of each narrowed dim (``None``: keep init)."""
    if old.ndim != new.ndim or any(n > o for n, o in zip(new.shape, old.shape)):
        report.fresh.append(key)
        return None
    fallback = False
    for dim, (want, have) in enumerate(zip(new.shape, old.shape)):
        if want != have:
            index = _dim_index(removed, *module, dim, have, want)
            if index is None:
                fallback, index = True, torch.arange(want)
            old = old.index_select(dim, index.to(old.device))
    if fallback:
        report.fallbacks.append(key)
    return old


def _is_grouped(old: nn.Module | None, new: nn.Module) -> bool:
    """A grouped conv (not depthwise on both sides): its weight holds one block per group."""
    if not isinstance(old, nn.Conv2d) or not isinstance(new, nn.Conv2d) or max(old.groups, new.groups) == 1:
        return False
    return not (old.groups == old.in_channels and new.groups == new.in_channels)


def _grouped_weight(key: str, old: nn.Conv2d, new: nn.Conv2d, name: str, removed: Removed,
                    report: InheritReport) -> torch.Tensor | None:  # fmt: skip
    """A grouped conv's weight through its dense form (zero outside the group blocks): the kept output
    and input channels selected there, then the narrower conv's group blocks taken (its group count may
    differ: RegNet's is width / group width)."""
    weight, groups = old.weight, old.groups
    if new.out_channels > old.out_channels or new.in_channels > old.in_channels:
        report.fresh.append(key)
        return None
    rows, cols = old.out_channels // groups, old.in_channels // groups
    dense = weight.new_zeros(old.out_channels, old.in_channels, *weight.shape[2:])
    for block in range(groups):
        dense[block * rows : (block + 1) * rows, block * cols : (block + 1) * cols] = weight[
            block * rows : (block + 1) * rows
        ]
    fallback = False
    for dim, (have, want) in enumerate(((old.out_channels, new.out_channels), (old.in_channels, new.in_channels))):
        if want != have:
            index = _dim_index(removed, name, old, dim, have, want)
            if index is None:
                fallback, index = True, torch.arange(want)
            dense = dense.index_select(dim, index.to(dense.device))
    if fallback:
        report.fallbacks.append(key)
    rows, cols = new.out_channels // new.groups, new.in_channels // new.groups
    return torch.cat([dense[b * rows : (b + 1) * rows, b * cols : (b + 1) * cols] for b in range(new.groups)])


def _kept(source: nn.Module, removed: Removed) -> dict[tuple[str, str], list[int]]:
    kept = {}
    for (name, side), dropped in removed.items():
        module = source.get_submodule(name)
        weight = getattr(module, "weight", None)
        width = getattr(module, "num_features", 0)
        if isinstance(weight, torch.Tensor):
            width = weight.shape[0] if side == OUT or weight.ndim == 1 else weight.shape[1] * _conv_groups(module)
        kept[(name, side)] = [i for i in range(width) if i not in dropped]
    return kept


def inherit_weights(target: nn.Module, source: nn.Module, groups: ChannelGroups | None = None) -> InheritReport:
    """Fill the narrower ``target`` (the same family, fewer channels somewhere) from ``source``: in each
    coupled channel group, the channels of largest L2 importance; tensors absent from ``source`` or grown
    keep their init. ``groups``: :func:`channel_groups` of ``source``, when already built. ``source`` is
    not changed."""
    found = groups if groups is not None and groups.source is source else channel_groups(source)
    report = InheritReport(graph_error=found.error)
    removed = _removed_channels(found, target, report) if found.graph is not None else {}
    report.kept = _kept(source, removed)
    sources = dict(source.named_modules())
    with torch.no_grad():
        for name, module in target.named_modules():
            theirs = sources.get(name)
            for tensor_name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                key = f"{name}.{tensor_name}" if name else tensor_name
                old = getattr(theirs, tensor_name, None) if theirs is not None else None
                if not isinstance(old, torch.Tensor):
                    report.fresh.append(key)
                    continue
                if tensor_name == "weight" and _is_grouped(theirs, module):
                    picked = _grouped_weight(key, theirs, module, name, removed, report)  # type: ignore[arg-type]
                else:
                    picked = _select(key, old, tensor, (name, theirs), removed, report)  # type: ignore[arg-type]
                if picked is None:
                    continue
                if picked.shape != tensor.shape:
                    raise ValueError(
                        f"inherited {key!r} has shape {tuple(picked.shape)}, expected {tuple(tensor.shape)}"
                    )
                tensor.copy_(picked)
    return report


def _conv_groups(module: nn.Module) -> int:
    """A convolution's group count (1 for every other module)."""
    return int(module.groups) if isinstance(module, nn.modules.conv._ConvNd) else 1
