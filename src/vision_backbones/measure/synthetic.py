"""Kernel configurations the zoo holds too few of, drawn from a generic prior and profiled in small networks.

nn-Meter trains each kernel type's regressor on *sampled configurations*. The zoo and the search spaces
give the predictor thousands of dense, depthwise and pointwise convolutions, but grouped convolutions
come from three families only (ResNeXt, RegNet, ShuffleNet v1) and wide matrix products and layer norms
from one (ConvNeXt). With that family held out, its kernel type's forest extrapolates from one or two
others' group widths, or from one-row classifier heads. The networks here cover those types from a
prior that is no family's list of shapes: channels per group, groups, kernel size and map size drawn at
random within the ranges a 224 px backbone uses (wider channels on smaller maps).

- ``gconv`` networks: four grouped convolutions (each with its batch norm and ReLU), a dense 1x1
  convolution before each whose input width differs from the channels it is given; any group count from
  2 to 64 (log-uniform) and 2-320 channels per group (:data:`PER_GROUP`; prior 3: prior 2 drew 11 group
  counts and at most 128 per group, so RegNet's 9 or 21 groups and ShuffleNet v1's 240-320 per group were
  extrapolated);
- ``conv`` networks: four dense convolutions (kernel 1, 3, 5 or 7, each with its batch norm and ReLU)
  on one map of 7-224 px, up to 2 G multiply-adds each, channels multiples of 8 or of 32, half of
  them ending in a max pool: the zoo's dense convolutions on large maps
  come from few families (VGG) and its kernel sizes above 3 from fewer (Zoph & Le's plain nets);
- ``mlp`` networks: three channels-last blocks ``x + fc2(gelu(fc1(layer_norm(x))))`` of random width
  and expansion on an ``H x W`` map (the matrix products of ConvNeXt and transformer MLPs).

Each network is a :class:`~.predictor.NetworkSample` of family ``synthetic:<kind>`` and origin
``synthetic``. A fit (:meth:`.predictor.KernelPredictor.fit`) trains only the forests of the types the
network was drawn for (:data:`TRAINS`) on it and leaves it out of the per-type scales and the
overhead, which describe whole networks; a held-out family's test never holds them out, and a fit that
leaves a family out drops any synthetic kernel equal to one of that family's.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Collection, Iterator

import torch
from torch import Tensor, nn

SYNTHETIC_KINDS = ("gconv", "mlp", "conv")
# the kernel types each kind of network was drawn for: its other kernels (the 1x1 convs, batch norms and
# activations around them) are left to the zoo's networks, which hold thousands of them in context
# (eager PyTorch's types, then ONNX Runtime's)
TRAINS = {
    "synthetic:gconv": ("gconv", "ort:Conv:group"),
    "synthetic:mlp": ("linear", "ln", "ort:MatMul", "ort:FusedMatMul", "ort:Gemm", "ort:LayerNormalization"),
    "synthetic:conv": ("conv", "pool", "ort:Conv", "ort:MaxPool"),
}
PRIOR = 3  # in every label: a cache's synthetic networks of another prior are stale and profiled again
# map side -> the widest channel count drawn there (a 224 px backbone widens as it shrinks)
WIDEST = {56: 384, 28: 768, 14: 1536, 7: 2048}
WIDEST_DENSE = {224: 96, 112: 192, **WIDEST}  # dense convolutions also run on the first, largest maps
# channels per group of a grouped convolution: RegNet's group widths (8-256, multiples of 8), ResNeXt's 4-32
# per group, ShuffleNet v1's 1x1 convolutions (48-320 per group), and a few widths off the vector length
PER_GROUP = (2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 120, 128, 160, 192, 232, 256, 320)
MOST_DENSE_MACS = 2e9  # VGG's largest convolution does 1.85 G multiply-adds


def _grouped_network(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    side = rng.choice(tuple(WIDEST))
    widest = WIDEST[side]
    layers: list[nn.Module] = []
    first = channels = 8 * rng.randint(2, widest // 16)
    for _ in range(4):
        while True:
            groups = round(math.exp(rng.uniform(math.log(2), math.log(64))))  # any count: RegNet's 7, 9, 21 too
            kernel = rng.choice((1, 3, 3))
            per_group_in = rng.choice(PER_GROUP)
            per_group_out = per_group_in if kernel == 3 else rng.choice(PER_GROUP)
            if 16 <= groups * max(per_group_in, per_group_out) <= widest:
                break
        width_in, width_out = groups * per_group_in, groups * per_group_out
        if width_in != channels:
            layers.append(nn.Conv2d(channels, width_in, 1, bias=False))
        layers += [
            nn.Conv2d(width_in, width_out, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(width_out),
            nn.ReLU(inplace=True),
        ]
        channels = width_out
    return nn.Sequential(*layers), (1, first, side, side)


class _ChannelsLastMLP(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


def _mlp_network(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    side = rng.choice(tuple(WIDEST))
    channels = 8 * rng.randint(4, WIDEST[side] // 8)
    blocks = [_ChannelsLastMLP(channels, 8 * max(1, round(channels * rng.uniform(1.0, 4.5) / 8))) for _ in range(3)]
    return nn.Sequential(*blocks), (1, side, side, channels)


def _dense_network(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    side = rng.choice(tuple(WIDEST_DENSE))
    widest = WIDEST_DENSE[side]
    layers: list[nn.Module] = []
    first = channels = rng.choice((3, _channels(rng, widest)))
    for _ in range(4):
        while True:
            kernel, width = rng.choice((1, 3, 3, 5, 7)), _channels(rng, widest)
            if side * side * channels * width * kernel * kernel <= MOST_DENSE_MACS:
                break
        layers += [
            nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
    if rng.random() < 0.5:  # a max pool on the map, as plain networks downsample
        layers.append(nn.MaxPool2d(rng.choice((2, 3)), 2, padding=0))
    return nn.Sequential(*layers), (1, first, side, side)


def _channels(rng: random.Random, widest: int) -> int:
    """A channel count up to ``widest``: a multiple of 8 (``make_divisible``'s networks) or of 32 (ResNet's,
    VGG's), each half the time; the runtime's vector blocking makes the two run at different rates."""
    step = rng.choice((8, 32))
    return step * rng.randint(max(1, 16 // step), max(1, widest // step))


def synthetic_labels(count: int, seed: int = 0) -> list[str]:
    """The labels :func:`synthetic_networks` gives, in its order."""
    return [f"synthetic:{kind}#p{PRIOR}.{seed}.{index}" for kind in SYNTHETIC_KINDS for index in range(count)]


def synthetic_networks(
    count: int, seed: int = 0, skip: Collection[str] = ()
) -> Iterator[tuple[str, str, nn.Module, tuple[int, ...]]]:
    """``count`` networks per kind in :data:`SYNTHETIC_KINDS`, as ``(label, family, eval model, input
    shape)``, leaving out the labels in ``skip`` (each network is drawn on the meta device and only the
    ones returned get weights, so skipping costs nothing and does not change the others)."""
    makers = {"gconv": _grouped_network, "mlp": _mlp_network, "conv": _dense_network}
    labels = iter(synthetic_labels(count, seed))
    for kind in SYNTHETIC_KINDS:
        rng = random.Random(f"synthetic:{kind}:{seed}")
        for _ in range(count):
            with torch.device("meta"):
                model, shape = makers[kind](rng)
            label = next(labels)
            if label not in skip:
                yield label, f"synthetic:{kind}", _materialized(model, label), shape


def _materialized(model: nn.Module, label: str) -> nn.Module:
    """``model`` (on meta) given real, freshly initialized weights, seeded by its label."""
    model = model.to_empty(device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(label.encode()))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return model.eval()
