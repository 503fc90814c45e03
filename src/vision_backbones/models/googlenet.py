"""GoogLeNet (Inception v1).

Paper: "Going Deeper with Convolutions", https://arxiv.org/abs/1409.4842

The paper's idea is the Inception module (``inception_v1_block``): 1x1, 3x3 and 5x5 convolutions
and a 3x3 max pool run side by side on the same input and their outputs are concatenated, so
one block sees several receptive fields; cheap 1x1 "reduce" convs in front of the 3x3 and 5x5
(and after the pool) keep the width, and the cost, in check. Two auxiliary classifiers
(``GoogLeNetAux``) read the stride-16 maps after blocks 4a and 4d and add their loss (weight 0.3
in the paper) to push gradient into the middle of the network while training; they are part of
the classifier model in training mode only (``forward`` then returns ``InceptionOutputs``) and are
never built for the features-only backbone.

As in torchvision, every convolution is followed by batch norm (the paper predates it and used
local response normalisation in the stem instead). Options reproduce torchvision's port:
``branch5x5_kernel_size=3`` (a known slip of that port, pytorch/vision#906), a 2x2 last max pool
and ``drop_rate`` 0.2. ``transform_input`` re-normalises ImageNet-normalised input to the [-1, 1] range
Google's checkpoints expect (torchvision turns it on for its pretrained weights).

Levels: conv 7x7/2 (stride 2) | max pool, 1x1, 3x3 (stride 4) | max pool, 3a-3b (stride 8) |
max pool, 4a-4e (stride 16) | max pool, 5a-5b (stride 32). Max pools use ``ceil_mode``.

The pieces every Inception network here shares (``BasicConv``, ``Branches``, ``inception_stage``,
the stems, ``TransformInput``, ``InceptionOutputs``) live in ``vision_backbones.layers.inception``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Union, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vision_backbones.backbone import Backbone
from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD, DesignFields, Preprocessing
from vision_backbones.head import ClassifierHead
from vision_backbones.layers.inception import (
    BasicConv,
    Branches,
    InceptionOutputs,
    TransformInput,  # noqa: F401  (re-exported: imported from here by older code and tests)
    chain,
    googlenet_stem,
    inception_stage,
    input_transform,
)
from vision_backbones.registry import register_family
from vision_backbones.validate import check_choice, check_ints, check_rate

# ---------------------------------------------------------------- GoogLeNet blocks


def inception_v1_block(in_channels: int, widths: Sequence[int], *, branch5x5_kernel_size: int) -> Branches:
    """One row of the paper's Table 1: ``(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)``."""
    c1, c3_reduce, c3, c5_reduce, c5, pool_proj = widths
    return Branches(
        in_channels,
        BasicConv(in_channels, c1, 1),
        nn.Sequential(BasicConv(in_channels, c3_reduce, 1), BasicConv(c3_reduce, c3, 3)),
        nn.Sequential(BasicConv(in_channels, c5_reduce, 1), BasicConv(c5_reduce, c5, branch5x5_kernel_size)),
        nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), BasicConv(in_channels, pool_proj, 1)),
    )


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool -> 1x1 conv 128 -> fc 1024 -> ReLU -> dropout -> fc."""

    def __init__(self, in_channels: int, num_classes: int, *, drop_rate: float) -> None:
        super().__init__()
        self.reduce = BasicConv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # The paper's 5x5/3 average pool turns the 14x14 map into 4x4; adaptive pooling does so at any size.
        x = self.reduce(F.adaptive_avg_pool2d(x, 4)).flatten(1)  # (B, 2048)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNetHead(ClassifierHead):
    """The classifier head, plus the auxiliary classifiers on 4a (``aux1``) and 4d (``aux2``).

    The aux heads belong to the classifier (``head.aux1.*``), not to the backbone: a features-only
    model has none, and loading a classifier checkpoint into one skips them with the head.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        drop_rate: float,
        aux_channels: tuple[int, int] | None,
        aux_drop_rate: float,
    ) -> None:
        super().__init__(in_channels, num_classes, dropout=drop_rate)
        self.aux1: GoogLeNetAux | None = None
        self.aux2: GoogLeNetAux | None = None
        if aux_channels is not None:  # the channels of 4a's and 4d's outputs
            self.aux1 = GoogLeNetAux(aux_channels[0], num_classes, drop_rate=aux_drop_rate)
            self.aux2 = GoogLeNetAux(aux_channels[1], num_classes, drop_rate=aux_drop_rate)


# ---------------------------------------------------------------- network


@dataclass(frozen=True)
class GoogLeNetConfig:
    """Architecture of GoogLeNet.

    Attributes:
        stem_channels: the 7x7/2 conv, the 1x1 reduce and the 3x3 conv of the stem.
        inception_widths: the paper's Table 1 rows 3a..5b, see ``inception_v1_block``.
        depths: Inception blocks at strides 8, 16 and 32 (3a-3b, 4a-4e, 5a-5b).
        branch5x5_kernel_size: kernel of the "5x5" branch (torchvision: 3).
        last_pool_kernel_size: the max pool before 5a, 3x3/2 in the paper (torchvision: 2x2/2).
        aux_logits: build the two auxiliary classifiers (classifier models only).
        transform_input: re-normalise ImageNet-normalised input to [-1, 1] first.
        drop_rate: dropout before the classifier (paper 0.4, torchvision 0.2).
        aux_drop_rate: dropout inside the auxiliary classifiers.
    """

    stem_channels: tuple[int, int, int] = (64, 64, 192)
    inception_widths: tuple[tuple[int, ...], ...] = (
        (64, 96, 128, 16, 32, 32),  # 3a
        (128, 128, 192, 32, 96, 64),  # 3b
        (192, 96, 208, 16, 48, 64),  # 4a
        (160, 112, 224, 24, 64, 64),  # 4b
        (128, 128, 256, 24, 64, 64),  # 4c
        (112, 144, 288, 32, 64, 64),  # 4d
        (256, 160, 320, 32, 128, 128),  # 4e
        (256, 160, 320, 32, 128, 128),  # 5a
        (384, 192, 384, 48, 128, 128),  # 5b
    )
    depths: tuple[int, int, int] = (2, 5, 2)
    branch5x5_kernel_size: int = 5
    last_pool_kernel_size: int = 3
    aux_logits: bool = True
    transform_input: bool = False
    drop_rate: float = 0.4
    aux_drop_rate: float = 0.7

    def __post_init__(self) -> None:
        check_ints("stem_channels", self.stem_channels, min=1, length=3)
        check_ints("depths", self.depths, min=1, length=3)
        if self.depths[1] < 4:
            raise ValueError(
                f"depths must have >= 4 blocks at stride 16 (the aux heads read blocks 4a and 4d), got {self.depths!r}"
            )
        if len(self.inception_widths) != sum(self.depths):
            raise ValueError(
                f"inception_widths has {len(self.inception_widths)} rows; expected sum(depths) = {sum(self.depths)}"
            )
        for index, row in enumerate(self.inception_widths):
            check_ints(f"inception_widths[{index}]", row, min=1, length=6)
        check_choice("branch5x5_kernel_size", self.branch5x5_kernel_size, (5, 3))  # 3: torchvision's weights
        check_choice("last_pool_kernel_size", self.last_pool_kernel_size, (3, 2))  # 2: torchvision's weights
        check_rate("drop_rate", self.drop_rate)
        check_rate("aux_drop_rate", self.aux_drop_rate)


class GoogLeNet(Backbone):
    """Stem conv (stride 2) + four max-pool-led stages (strides 4..32); aux heads in training mode."""

    def __init__(self, config: GoogLeNetConfig, *, in_channels: int, num_classes: int | None) -> None:
        stem = input_transform(config.transform_input, in_channels)
        stages = googlenet_stem(in_channels, config.stem_channels, nn.MaxPool2d(3, stride=2, ceil_mode=True))
        channels = config.stem_channels[-1]
        widths = iter(config.inception_widths)
        block = partial(inception_v1_block, branch5x5_kernel_size=config.branch5x5_kernel_size)
        aux_channels = (0, 0)  # inputs of the aux heads: outputs of 4a and 4d
        for index, (depth, pool_kernel) in enumerate(zip(config.depths, (3, 3, config.last_pool_kernel_size))):
            blocks, channels = chain(channels, [partial(block, widths=next(widths)) for _ in range(depth)])
            if index == 1:
                aux_channels = (cast(int, blocks[0].out_channels), cast(int, blocks[3].out_channels))
            stages.append(inception_stage(nn.MaxPool2d(pool_kernel, stride=2, ceil_mode=True), blocks))

        head = None
        if num_classes is not None:
            head = GoogLeNetHead(
                channels,
                num_classes,
                drop_rate=config.drop_rate,
                aux_channels=aux_channels if config.aux_logits else None,
                aux_drop_rate=config.aux_drop_rate,
            )
        super().__init__(stem, stages, in_channels=in_channels, head=head)

    # The override widens ``Backbone.forward``'s return on purpose: training mode with aux heads returns
    # ``InceptionOutputs``, as torchvision's GoogLeNet does. ``type: ignore`` must end its line (TorchScript).
    def forward(  # type: ignore[override]
        self, x: Tensor
    ) -> Union[Tensor, list[Tensor], InceptionOutputs]:  # noqa: UP007  (TorchScript)
        """The selected maps (features only), logits (eval, or no aux heads), or ``InceptionOutputs``
        (training with aux heads)."""
        self._validate(x)
        head = self.head
        if head is None:  # features only: the selected levels, as every backbone
            return self._run_levels(x, self._out_indices, self._out_indices[-1])[1]
        # Nested ifs, not one ``and`` chain: TorchScript then skips the code a None aux head can't run.
        if head.aux1 is not None and head.aux2 is not None:  # noqa: SIM102
            if self.training:
                return self._forward_with_aux(x)
        return head(self._run_levels(x, [], len(self.stages) - 1)[0])

    @torch.jit.unused
    def _forward_with_aux(self, x: Tensor) -> InceptionOutputs:
        """Training with aux heads: they read the outputs of 4a and 4d, inside the stride-16 stage."""
        head = cast(GoogLeNetHead, self.head)  # forward calls this only with both aux heads built
        aux1, aux2 = cast(GoogLeNetAux, head.aux1), cast(GoogLeNetAux, head.aux2)
        blocks = cast(nn.Sequential, self.stages[3].blocks)  # (B, 512 or 528, H/16, W/16) at the taps
        final, (after_4a, after_4d) = self._run_levels_tapped(x, [blocks[0], blocks[3]], len(self.stages) - 1)
        return InceptionOutputs(head(final), [aux1(after_4a), aux2(after_4d)])


VARIANTS: dict[str, GoogLeNetConfig] = {"googlenet": GoogLeNetConfig()}

# Nothing for scaling or NetAdapt (``family.DesignFields``), and why.
DESIGN = DesignFields(
    fixed_because="its branch widths are a hand-written table of six per Inception block, and its depths must match that table's rows"
)

# torchvision's weights: resize 256, center crop 224, bilinear. They expect input in [-1, 1]
# (mean = std = 0.5); ``transform_input=True`` takes ImageNet-normalised input instead, as torchvision
# does (``create_model`` then reports ImageNet's mean and std).
PREPROCESSING = Preprocessing(
    INCEPTION_MEAN, INCEPTION_STD, input_size=224, crop_pct=224 / 256, interpolation="bilinear"
)

register_family("googlenet", VARIANTS, GoogLeNet, design=DESIGN, preprocessing=PREPROCESSING)
