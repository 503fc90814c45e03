"""Kernel configurations the zoo holds too few of, drawn from a generic prior and profiled in small networks.

nn-Meter trains each kernel type's regressor on *sampled configurations*. The zoo and the search spaces
give the predictor thousands of dense, depthwise and pointwise convolutions, but grouped convolutions
come from three families only (ResNeXt, RegNet, ShuffleNet v1) and wide matrix products and layer norms
from one (ConvNeXt). With that family held out, its kernel type's forest extrapolates from one or two
others' group widths, or from one-row classifier heads. The networks here cover those types from a
prior that is no family's list of shapes: channels per group, groups, kernel size and map size drawn at
random within the ranges a 224 px backbone uses (wider channels on smaller maps).

- ``gconv`` networks: four grouped convolutions (each with its batch norm and ReLU), a dense 1x1
  convolution before each whose channels do not divide into its groups;
- ``mlp`` networks: three channels-last blocks ``x + fc2(gelu(fc1(layer_norm(x))))`` of random width
  and expansion on an ``H x W`` map (the matrix products of ConvNeXt and transformer MLPs).

Each network is a :class:`~.predictor.NetworkSample` of family ``synthetic:<kind>`` and origin
``synthetic``; a held-out family's test never holds them out, and a fit that leaves a family out
drops any synthetic kernel equal to one of that family's (:meth:`.predictor.KernelPredictor.fit`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from torch import Tensor, nn

SYNTHETIC_KINDS = ("gconv", "mlp")
# map side -> the widest channel count drawn there (a 224 px backbone widens as it shrinks)
WIDEST = {56: 384, 28: 768, 14: 1536, 7: 2048}


def _grouped_network(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    side = rng.choice(tuple(WIDEST))
    widest = WIDEST[side]
    layers: list[nn.Module] = []
    first = channels = 8 * rng.randint(2, widest // 16)
    for _ in range(4):
        while True:
            groups = rng.choice((2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64))
            kernel = rng.choice((1, 3, 3))
            per_group_in = rng.choice((2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128))
            per_group_out = per_group_in if kernel == 3 else rng.choice((2, 4, 8, 16, 24, 32, 64, 96, 128))
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


def synthetic_networks(count: int, seed: int = 0) -> Iterator[tuple[str, str, nn.Module, tuple[int, ...]]]:
    """``count`` networks per kind in :data:`SYNTHETIC_KINDS`, as ``(label, family, eval model, input shape)``."""
    makers = {"gconv": _grouped_network, "mlp": _mlp_network}
    for kind in SYNTHETIC_KINDS:
        rng = random.Random(f"synthetic:{kind}:{seed}")
        for index in range(count):
            model, shape = makers[kind](rng)
            yield f"synthetic:{kind}#{seed}.{index}", f"synthetic:{kind}", model.eval(), shape
