"""Single-path one-shot architecture search (SPOS) over MnasNet's MBConv space.

Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform Sampling"
(https://arxiv.org/abs/1904.00420): train one *supernet* that holds every choice of every layer,
activating one path (one choice per layer) per training step, sampled uniformly; then rank
sub-networks by their accuracy with the shared weights, each after recomputing its batch-norm
statistics (the statistics a supernet collected mix many paths), and search over paths with that
ranking instead of training each candidate.

The space is MnasNet's factorized hierarchical one over the base model's rows (``models/mnasnet.py``):
per stage (row) one operation for all its layers, a kernel x expansion x squeeze-excite choice, and
its depth, ``repeats + delta``. The kernel sizes of a layer share one depthwise "superkernel"
(a ``k x k`` kernel is the centre of the largest; Single-Path NAS) and every other choice has its
own block, as in SPOS (``Supernet(share_kernels=False)``: a block per operation). A
sub-network is exported as ``rows=[...]`` overrides, and ``subnetwork`` copies the shared weights
into ``create_model(base, **arch)`` itself, so the figure the search ranked on belongs to exactly
the network ``create_model`` rebuilds.

Skip-connection collapse. DARTS relaxes each edge to a softmax over operations and lets gradient
descent pick; parameter-free skips win that race early, so searched cells end all-skip (NAS-Bench-201:
DARTS 54.30 %). Here there is no learned architecture weight during training: paths are sampled
uniformly, so every operation and depth gets the same share of updates whatever its early accuracy.
"Skip" exists only as a shallower depth, and it is capped: the first (strided) layer of a stage is
never skipped and a stage keeps at least ``repeats + min(depth_deltas)`` (>= 1) layers, at most two
skips per stage with the default deltas. ``skip_share`` reports the share of skippable layers a path
leaves out next to the share a uniform path leaves out on average, so a search that drifts to the
shallowest networks shows it.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision_backbones.backbone import ClassifierHead
from vision_backbones.layers import init_weights
from vision_backbones.layers.conv import ConvNormAct, make_divisible
from vision_backbones.layers.inverted_residual import ACTIVATIONS, InvertedResidual, MBConvRow, expand_rows
from vision_backbones.measure.timing import num_threads
from vision_backbones.search.data import ProxySplits
from vision_backbones.search.evaluate import (
    ProxyTask,
    accuracy,
    make_optimizer,
    recompute_statistics,
    task_splits,
    train_model,
    training_batches,
    warmup_cosine,
)
from vision_backbones.search.latency import network_blocks
from vision_backbones.validate import check_choice, check_float, check_int

STRATEGIES = ("evolution", "random")


class StageChoice(NamedTuple):
    """One stage of a path: the operation all its layers use, and how many layers run."""

    kernel_size: int
    expand_ratio: float
    se_ratio: float
    depth: int


Path = tuple[StageChoice, ...]


def operation_key(kernel_size: int, expand_ratio: float, se_ratio: float) -> str:
    """A module name for one operation (no dots: ``k5_e6_se25`` is kernel 5, expansion 6, SE 0.25)."""
    return f"k{kernel_size}_e{expand_ratio:g}_se{round(100 * se_ratio)}".replace(".", "p")


@dataclass(frozen=True)
class OneShotSpace:
    """The supernet's choices over the rows of ``base`` (a registered ``mnasnet`` variant).

    ``width_multiplier``, ``stem_channels``, ``head_channels`` and ``drop_rate`` are fixed overrides
    of every sub-network (a narrow network keeps proxy training fast).
    """

    base: str = "mnasnet1_0"
    width_multiplier: float = 0.5
    stem_channels: int = 32
    head_channels: int = 256
    drop_rate: float = 0.0
    kernels: tuple[int, ...] = (3, 5, 7)
    # one expansion and no SE by default: each further value is a block of its own per layer, and
    # with two or more the supernet stayed at chance loss on the proxy (benchmarks/search_evaluators.md)
    expansions: tuple[float, ...] = (6,)
    se_ratios: tuple[float, ...] = (0.0,)
    depth_deltas: tuple[int, ...] = (-1, 0, 1)

    def __post_init__(self) -> None:
        from vision_backbones.registry import get_entry

        entry = get_entry(self.base)
        if entry.family != "mnasnet":
            raise ValueError(f"one-shot base {self.base!r} is a {entry.family!r} model; expected a 'mnasnet' variant such as 'mnasnet1_0'")
        check_float("width_multiplier", self.width_multiplier, min=0, min_open=True)
        check_int("stem_channels", self.stem_channels, min=1)
        check_int("head_channels", self.head_channels, min=1)
        check_float("drop_rate", self.drop_rate, min=0, max=1, max_open=True)
        for name, values in (("kernels", self.kernels), ("expansions", self.expansions),
                             ("se_ratios", self.se_ratios), ("depth_deltas", self.depth_deltas)):
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty tuple without repeats, got {values!r}")
        for kernel in self.kernels:
            check_choice("kernels[...]", kernel, (1, 3, 5, 7, 9))
        for expansion in self.expansions:
            check_float("expansions[...]", expansion, min=1)
        for ratio in self.se_ratios:
            check_float("se_ratios[...]", ratio, min=0, max=1)
        for delta in self.depth_deltas:
            check_int("depth_deltas[...]", delta, min=-8, max=8)

    @property
    def rows(self) -> tuple[MBConvRow, ...]:
        from vision_backbones.registry import get_entry

        return get_entry(self.base).config.rows

    def operations(self) -> list[tuple[int, float, float]]:
        return list(itertools.product(self.kernels, self.expansions, self.se_ratios))

    def depths(self, stage: int) -> list[int]:
        """Allowed depths of ``stage``: ``repeats + delta``, at least 1, sorted."""
        repeats = self.rows[stage].repeats
        return sorted({max(1, repeats + delta) for delta in self.depth_deltas})

    def max_depth(self, stage: int) -> int:
        return self.depths(stage)[-1]

    def sample(self, rng: random.Random) -> Path:
        """A path drawn uniformly: each stage's operation and depth independently."""
        operations = self.operations()
        return tuple(StageChoice(*rng.choice(operations), rng.choice(self.depths(i))) for i in range(len(self.rows)))

    def check_path(self, path: Sequence[Sequence[Any]]) -> Path:
        if len(path) != len(self.rows):
            raise ValueError(f"path has {len(path)} stages; expected {len(self.rows)} (one per row of {self.base!r})")
        checked = []
        for i, choice in enumerate(path):
            stage = StageChoice(*choice)
            if (stage.kernel_size, stage.expand_ratio, stage.se_ratio) not in self.operations():
                raise ValueError(f"path[{i}] operation {tuple(stage[:3])} is not in the space; expected one of {self.operations()}")
            check_choice(f"path[{i}].depth", stage.depth, self.depths(i))
            checked.append(stage)
        return tuple(checked)

    def arch(self, path: Path) -> dict[str, Any]:
        """The JSON-able overrides of ``path``: ``create_model(self.base, **arch)`` builds it."""
        path = self.check_path(path)
        rows = [
            [choice.expand_ratio, choice.kernel_size, row.stride, row.out_channels, choice.depth, choice.se_ratio, row.activation]
            for row, choice in zip(self.rows, path)
        ]
        return {"rows": rows, "width_multiplier": self.width_multiplier, "stem_channels": self.stem_channels,
                "head_channels": self.head_channels, "drop_rate": self.drop_rate}

    def skip_share(self, path: Path) -> float:
        """Share of the skippable layers (beyond each stage's minimum depth) that ``path`` leaves out."""
        skippable = sum(self.max_depth(i) - self.depths(i)[0] for i in range(len(self.rows)))
        skipped = sum(self.max_depth(i) - choice.depth for i, choice in enumerate(path))
        return skipped / skippable if skippable else 0.0

    def uniform_skip_share(self) -> float:
        """``skip_share`` of a uniformly sampled path, on average (what no drift looks like)."""
        skippable = sum(self.max_depth(i) - self.depths(i)[0] for i in range(len(self.rows)))
        expected = sum(self.max_depth(i) - sum(self.depths(i)) / len(self.depths(i)) for i in range(len(self.rows)))
        return expected / skippable if skippable else 0.0


class SharedKernelConv(nn.Conv2d):
    """A depthwise conv whose ``k x k`` kernel is the centre of the largest one (``active_kernel``)."""

    active_kernel: int

    def forward(self, x: Tensor) -> Tensor:
        size = self.kernel_size[0]
        offset = (size - self.active_kernel) // 2
        weight = self.weight[:, :, offset : offset + self.active_kernel, offset : offset + self.active_kernel]
        return F.conv2d(x, weight, self.bias, self.stride, self.active_kernel // 2, self.dilation, self.groups)


def _share_kernels(block: InvertedResidual) -> None:
    conv = block.depthwise.conv
    shared = SharedKernelConv(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                              padding=conv.padding, groups=conv.groups, bias=conv.bias is not None)
    shared.load_state_dict(conv.state_dict())
    shared.active_kernel = conv.kernel_size[0]
    block.depthwise.conv = shared


class Supernet(nn.Module):
    """Every (stage, layer, operation) block of ``space``; ``forward`` runs the path set by ``set_path``.

    ``share_kernels=True`` (default): the kernel sizes of one (layer, expansion, SE) share one block,
    whose depthwise ``k x k`` kernel is the centre of the largest (Single-Path NAS's "superkernel",
    Stamoulis et al., https://arxiv.org/abs/1904.02877). Measured on MNIST: with a block of its own per
    kernel the supernet stayed at chance loss after 3 epochs with as few as two kernels per layer,
    while a shared block trains like a stand-alone network. ``False`` is plain SPOS (a block per operation).
    """

    def __init__(self, space: OneShotSpace, *, in_channels: int = 1, num_classes: int = 10, share_kernels: bool = True) -> None:
        super().__init__()
        self.space = space
        self.share_kernels = share_kernels
        self.in_channels = in_channels
        width = space.width_multiplier
        stem_channels = make_divisible(space.stem_channels * width)
        self.stem = ConvNormAct(in_channels, stem_channels, 3, stride=2, act_layer=nn.ReLU)
        self.stages = nn.ModuleList()
        stage_in = stem_channels
        for index, row in enumerate(space.rows):
            layers = nn.ModuleList(nn.ModuleDict() for _ in range(space.max_depth(index)))
            for kernel, expansion, se_ratio in space.operations():
                chosen = row._replace(kernel_size=kernel, expand_ratio=expansion, se_ratio=se_ratio,
                                      repeats=space.max_depth(index), expanded_channels=None)
                specs = expand_rows([chosen], stem_channels=stage_in, width_multiplier=width)
                key = self.block_key(kernel, expansion, se_ratio)
                if key in layers[0]:
                    continue  # one shared block for every kernel size
                if share_kernels:
                    specs = [spec._replace(kernel_size=max(space.kernels)) for spec in specs]
                for layer, spec in zip(layers, specs):
                    layer[key] = InvertedResidual(**spec._asdict())
                    if share_kernels:
                        _share_kernels(layer[key])
            self.stages.append(layers)
            stage_in = make_divisible(row.out_channels * width)
        self.head_conv = ConvNormAct(stage_in, space.head_channels, 1, act_layer=ACTIVATIONS["relu"])
        self.head = ClassifierHead(space.head_channels, num_classes, dropout=space.drop_rate)
        init_weights(self)  # the initialisation create_model gives the stand-alone network
        self.path: Path = space.sample(random.Random(0))

    def block_key(self, kernel_size: int, expand_ratio: float, se_ratio: float) -> str:
        kernel = max(self.space.kernels) if self.share_kernels else kernel_size
        return operation_key(kernel, expand_ratio, se_ratio)

    def set_path(self, path: Path) -> None:
        self.path = self.space.check_path(path)

    def path_blocks(self, path: Path | None = None) -> list[nn.Module]:
        """The blocks ``path`` runs, in order: stem, each active layer's operation, head conv, head."""
        path = self.path if path is None else path
        blocks: list[nn.Module] = [self.stem]
        for layers, choice in zip(self.stages, path):
            key = self.block_key(choice.kernel_size, choice.expand_ratio, choice.se_ratio)
            for j in range(choice.depth):
                block = layers[j][key]
                if self.share_kernels:
                    block.depthwise.conv.active_kernel = choice.kernel_size
                blocks.append(block)
        return [*blocks, self.head_conv, self.head]

    def forward(self, x: Tensor) -> Tensor:
        for block in self.path_blocks():
            x = block(x)
        return x  # (B, num_classes)


def subnetwork(supernet: Supernet, path: Path, *, num_classes: int = 10) -> nn.Module:
    """``create_model(base, **space.arch(path))`` holding the supernet's weights for ``path``."""
    from vision_backbones.registry import create_model

    space = supernet.space
    model = create_model(space.base, num_classes=num_classes, in_channels=supernet.in_channels, **space.arch(path))
    source, target = supernet.path_blocks(space.check_path(path)), network_blocks(model)
    if len(source) != len(target):
        raise RuntimeError(f"sub-network has {len(target)} blocks, the supernet path {len(source)}")
    for mine, theirs in zip(source, target):
        state = mine.state_dict()
        conv = getattr(getattr(mine, "depthwise", None), "conv", None)
        if isinstance(conv, SharedKernelConv):  # the centre of the shared kernel
            size, active = conv.kernel_size[0], conv.active_kernel
            offset = (size - active) // 2
            state["depthwise.conv.weight"] = conv.weight[:, :, offset : offset + active, offset : offset + active]
        theirs.load_state_dict(state, strict=True)
    return model


@dataclass
class PathScore:
    path: Path
    val_acc1: float


@dataclass
class OneShotResult:
    """A one-shot search's outcome; ``arch`` is what ``create_model(space.base, **arch)`` rebuilds."""

    arch: dict[str, Any]
    path: Path
    supernet_val_acc1: float
    skip_share: float
    uniform_skip_share: float
    top_skip_share: float  # mean over the ten best paths found
    supernet_seconds: float
    search_seconds: float
    history: list[PathScore] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "path": [list(c) for c in self.path], "supernet_val_acc1": self.supernet_val_acc1,
            "skip_share": self.skip_share, "uniform_skip_share": self.uniform_skip_share,
            "top_skip_share": self.top_skip_share, "supernet_seconds": self.supernet_seconds,
            "search_seconds": self.search_seconds, "paths_evaluated": len(self.history),
        }


SAMPLINGS = ("fair", "uniform")


def fair_paths(space: OneShotSpace, rng: random.Random) -> list[Path]:
    """One path per operation such that every stage runs every operation exactly once (FairNAS's
    strict fairness); each path's depths are drawn uniformly."""
    operations = space.operations()
    orders = [rng.sample(operations, len(operations)) for _ in space.rows]
    return [
        tuple(StageChoice(*orders[stage][k], rng.choice(space.depths(stage))) for stage in range(len(space.rows)))
        for k in range(len(operations))
    ]


def train_supernet(
    supernet: Supernet, task: ProxyTask, *, seed: int = 0, splits: ProxySplits | None = None, sampling: str = "uniform"
) -> list[float]:
    """Train the supernet on ``splits.train``; returns the mean loss per epoch.

    ``sampling="uniform"`` (default) is SPOS: one uniformly drawn path per batch, one optimizer step;
    the operations of a layer share its updates (with six, each gets a sixth). ``"fair"`` is
    FairNAS's strict fairness (Chu et al., https://arxiv.org/abs/1907.01845): per batch one path per
    operation, so that every layer runs every operation once, gradients summed, then one step: each
    operation is updated every step, at the price of one forward/backward per operation. Either way
    every operation and depth is sampled equally often, so training favours no choice, skip included.
    Measured on MNIST (benchmarks/search_evaluators.md): with six operations per layer neither left
    chance loss within a few hundred steps (uniform: 2.32 after 4 epochs; fair: 2.32 after 2),
    while a depth-only supernet reached 1.32 after 2 epochs, as a stand-alone network does.
    """
    check_choice("sampling", sampling, SAMPLINGS)
    splits = splits or task_splits(task)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    if task.channels_last:
        supernet.to(memory_format=torch.channels_last)
    space = supernet.space
    if sampling == "uniform":
        with num_threads(task.threads):
            return train_model(supernet, splits, task, seed=seed, step=lambda model: supernet.set_path(space.sample(rng)))
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(supernet, task)
    total = max(1, len(splits.train[1]) // task.batch_size) * task.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total))
    supernet.train()
    losses = []
    with num_threads(task.threads):
        for _ in range(task.epochs):
            epoch_loss, batches = 0.0, training_batches(splits.train, task.batch_size, generator)
            for images, labels in batches:
                optimizer.zero_grad(set_to_none=True)
                paths = fair_paths(space, rng)
                for path in paths:
                    supernet.set_path(path)
                    loss = F.cross_entropy(supernet(images), labels, label_smoothing=task.label_smoothing)
                    (loss / len(paths)).backward()
                    epoch_loss += loss.item() / len(paths)
                optimizer.step()
                scheduler.step()
            losses.append(epoch_loss / len(batches))
    return losses


def path_accuracy(supernet: Supernet, path: Path, task: ProxyTask, *, splits: ProxySplits | None = None, seed: int = 0) -> float:
    """Validation top-1 (percent) of ``path`` with the shared weights, batch-norm statistics recomputed for it."""
    splits = splits or task_splits(task)
    supernet.set_path(path)
    # task.threads (1): on a shared machine a second intra-op thread can make small convs 5-30x slower
    with num_threads(task.threads):
        recompute_statistics(supernet, splits, replace(task, bn_batches=max(1, task.bn_batches)), seed=seed)
        return accuracy(supernet, splits.val, batch_size=task.eval_batch_size)


def _mutate(space: OneShotSpace, path: Path, rng: random.Random) -> Path:
    """``path`` with one stage's operation or depth redrawn (to a different value)."""
    stage = rng.randrange(len(path))
    choice = path[stage]
    if rng.random() < 0.5 and len(space.depths(stage)) > 1:
        new = choice._replace(depth=rng.choice([d for d in space.depths(stage) if d != choice.depth]))
    else:
        operations = [op for op in space.operations() if op != tuple(choice[:3])] or space.operations()
        new = StageChoice(*rng.choice(operations), choice.depth)
    return path[:stage] + (new,) + path[stage + 1 :]


def search_paths(
    supernet: Supernet,
    task: ProxyTask,
    *,
    strategy: str = "evolution",
    budget: int = 60,
    population: int = 16,
    sample_size: int = 4,
    seed: int = 0,
    splits: ProxySplits | None = None,
    constraint: Callable[[Path], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PathScore]:
    """Score ``budget`` distinct paths by supernet accuracy: uniformly at random, or by regularized
    evolution (Real et al., https://arxiv.org/abs/1802.01548: ``population`` random paths, then the
    best of ``sample_size`` drawn from the population is mutated and the oldest member dropped).
    ``constraint`` rejects paths (e.g. over a latency budget) before they are scored."""
    check_choice("strategy", strategy, STRATEGIES)
    check_int("budget", budget, min=1)
    check_int("population", population, min=2)
    check_int("sample_size", sample_size, min=1, max=population)
    splits = splits or task_splits(task)
    space = supernet.space
    rng = random.Random(seed)
    scores: dict[Path, float] = {}
    history: list[PathScore] = []
    alive: list[PathScore] = []

    def propose(make: Callable[[], Path]) -> Path | None:
        for _ in range(200):
            path = make()
            if path not in scores and (constraint is None or constraint(path)):
                return path
        return None

    with torch.no_grad():
        while len(history) < budget:
            if strategy == "random" or len(alive) < population:
                path = propose(lambda: space.sample(rng))
            else:
                parent = max(rng.sample(alive, sample_size), key=lambda s: s.val_acc1)
                path = propose(lambda: _mutate(space, parent.path, rng))
            if path is None:
                break  # the space (under the constraint) is exhausted
            scores[path] = path_accuracy(supernet, path, task, splits=splits, seed=seed)
            scored = PathScore(path, scores[path])
            history.append(scored)
            alive.append(scored)
            if len(alive) > population:
                alive.pop(0)  # the oldest, not the worst: regularized ("aging") evolution
            if progress is not None:
                progress(len(history), budget)
    return history


def run_one_shot(
    space: OneShotSpace | None = None,
    task: ProxyTask | None = None,
    *,
    supernet_epochs: int = 10,
    strategy: str = "evolution",
    budget: int = 60,
    seed: int = 0,
    constraint: Callable[[Path], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[OneShotResult, Supernet]:
    """Train a supernet for ``supernet_epochs`` on the proxy task, search ``budget`` paths, return the best."""
    space = space or OneShotSpace()
    task = task or ProxyTask()
    check_int("supernet_epochs", supernet_epochs, min=1)
    splits = task_splits(task)
    supernet = Supernet(space)
    start = time.perf_counter()
    train_supernet(supernet, replace(task, epochs=supernet_epochs), seed=seed, splits=splits)
    trained = time.perf_counter() - start
    history = search_paths(supernet, task, strategy=strategy, budget=budget, seed=seed, splits=splits,
                           constraint=constraint, progress=progress)
    searched = time.perf_counter() - start - trained
    ranked = sorted(history, key=lambda s: -s.val_acc1)
    best = ranked[0]
    top = ranked[:10]
    result = OneShotResult(
        arch=space.arch(best.path), path=best.path, supernet_val_acc1=best.val_acc1,
        skip_share=space.skip_share(best.path), uniform_skip_share=space.uniform_skip_share(),
        top_skip_share=sum(space.skip_share(s.path) for s in top) / len(top),
        supernet_seconds=trained, search_seconds=searched, history=history,
    )
    return result, supernet


def kendall_tau(estimates: Sequence[float], truths: Sequence[float]) -> float:
    """Kendall's tau-b between supernet estimates and stand-alone accuracies (``scipy.stats``)."""
    from scipy.stats import kendalltau

    if len(estimates) != len(truths) or len(estimates) < 2:
        raise ValueError(f"need two equal lists of >= 2 values, got {len(estimates)} and {len(truths)}")
    return float(kendalltau(estimates, truths).statistic)
