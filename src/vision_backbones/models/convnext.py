"""ConvNeXt.

"A ConvNet for the 2020s" (Liu et al., 2022), https://arxiv.org/abs/2201.03545: a ResNet
"modernized" step by step towards a vision Transformer, keeping only convolutions.

- Patchify stem: a 4x4 stride-4 conv + layer norm, like a ViT/Swin patch embedding (stride 4 at once).
- ``CNBlock``: a depthwise 7x7 conv (the large-kernel "token mixer"), then an inverted MLP applied
  at every pixel in channels-last layout: layer norm -> Linear 4x -> GELU -> Linear, as in a
  Transformer block. One norm and one activation per block, both fewer than in a ResNet block.
- Layer scale ("Going deeper with Image Transformers", Touvron et al., 2021,
  https://arxiv.org/abs/2103.17239): the branch is multiplied by a learned per-channel gain that
  starts at 1e-6, so every block starts close to the identity.
- Stochastic depth (``drop_path_rate``, https://arxiv.org/abs/1603.09382): the branch is dropped per
  sample, with a rate growing linearly from 0 to ``drop_path_rate`` over all blocks
  (``layers.drop_path_rates``, the schedule torchvision uses too).
- Separate downsampling layers: stages 2-4 open with layer norm + a 2x2 stride-2 conv (the norm
  keeps training stable where the resolution changes).

Levels: the patchify stem is ``stem`` (it reaches stride 4 and no level exists before it), so
``stages[0..3]`` are the four stages at strides 4, 8, 16, 32, each ``stages[i]`` opening with its
downsampling layer (``stages[0]``'s is the identity). ``frozen_stages=1`` freezes the stem and the
first stage, as mmdetection's/mmpretrain's ConvNeXt ``frozen_stages=1`` does.

Head (torchvision's): global average pool -> layer norm -> flatten -> dropout -> ``fc``.

``output_stride`` is not supported: the 2x2 downsampling conv would have to run at stride 1, where an
even kernel needs asymmetric "same" padding (timm pads it on the fly); the generic rewrite in
``dilation.py`` only dilates odd, symmetrically padded kernels and refuses it. ConvNeXt is used for
segmentation at output stride 32 with a UperNet/FPN neck, which needs no dilation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.family import DesignFields, Preprocessing
from vision_backbones.layers import DropPath, LayerNorm2d, drop_path_rates
from vision_backbones.published import TORCHVISION_V1, Published
from vision_backbones.registry import register_family
from vision_backbones.validate import check_ints, check_rate

_EPS = 1e-6  # every layer norm in ConvNeXt


class CNBlock(nn.Module):
    """``x + drop_path(layer_scale * mlp(norm(dwconv7x7(x))))``; the MLP runs channels last."""

    def __init__(self, channels: int, *, layer_scale_init: float | None, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=_EPS)
        self.fc1 = nn.Linear(channels, 4 * channels)  # a 1x1 conv as a Linear over the last dim
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * channels, channels)
        # (C, 1, 1): broadcast over an NCHW map; None leaves layer scale out.
        self.layer_scale = (
            nn.Parameter(torch.full((channels, 1, 1), layer_scale_init)) if layer_scale_init is not None else None
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        branch = self.conv_dw(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        branch = self.fc2(self.act(self.fc1(self.norm(branch))))
        branch = branch.permute(0, 3, 1, 2)  # (B, C, H, W)
        if self.layer_scale is not None:
            branch = self.layer_scale * branch
        return x + self.drop_path(branch)


class ConvNeXtStage(nn.Module):
    """The downsampling layer (identity in the first stage), then the stage's blocks."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXtHead(nn.Module):
    """Pool -> layer norm -> flatten -> dropout -> ``fc`` (torchvision's classifier, plus ``drop_rate``)."""

    def __init__(self, in_channels: int, num_classes: int, *, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = LayerNorm2d(in_channels, eps=_EPS)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_channels, num_classes)

    def pre_logits(self, x: Tensor) -> Tensor:
        return self.dropout(self.norm(self.pool(x)).flatten(1))  # (B, C)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pre_logits(x))


def _downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """Layer norm, then a 2x2 stride-2 conv: (B, in, H, W) -> (B, out, H/2, W/2)."""
    return nn.Sequential(
        OrderedDict(
            norm=LayerNorm2d(in_channels, eps=_EPS),
            conv=nn.Conv2d(in_channels, out_channels, 2, stride=2),
        )
    )


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Architecture of one ConvNeXt variant.

    Attributes:
        depths: blocks per stage.
        widths: channels of each stage (the paper's ``dims``).
        drop_path_rate: stochastic depth rate of the last block (torchvision's training values per variant).
        layer_scale_init: initial per-channel gain of each block's branch; ``None``: no layer scale.
        drop_rate: dropout before the classifier.
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...] = (96, 192, 384, 768)
    drop_path_rate: float = 0.0
    layer_scale_init: float | None = 1e-6
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_ints("depths", self.depths, min=1)
        check_ints("widths", self.widths, min=1, length=len(self.depths), per="stage")
        check_rate("drop_path_rate", self.drop_path_rate)
        check_rate("drop_rate", self.drop_rate)
        if self.layer_scale_init is not None and self.layer_scale_init <= 0.0:
            raise ValueError(f"layer_scale_init must be > 0 or None (no layer scale), got {self.layer_scale_init}")


def _init_weights(model: nn.Module) -> None:
    """torchvision's and the paper's scheme: truncated normal (std 0.02) convs and linears, zero biases."""
    if any(p.is_meta for p in model.parameters()):
        return  # nothing to initialise on the meta device
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class ConvNeXt(Backbone):
    """ConvNeXt backbone: a stride-4 patchify stem and four levels at strides 4, 8, 16, 32."""

    def __init__(self, config: ConvNeXtConfig, *, in_channels: int, num_classes: int | None) -> None:
        widths = config.widths
        # Stem: (B, in, H, W) -> (B, widths[0], H/4, W/4); the conv's bias stays (no norm before it).
        stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, widths[0], 4, stride=4),
                norm=LayerNorm2d(widths[0], eps=_EPS),
            )
        )
        rates = iter(drop_path_rates(config.drop_path_rate, sum(config.depths)))
        stages: list[nn.Module] = []
        for index, (depth, width) in enumerate(zip(config.depths, widths)):
            # The stem already reached stride 4: only stages 2-4 downsample.
            downsample = _downsample(widths[index - 1], width) if index > 0 else nn.Identity()
            blocks = [
                CNBlock(width, layer_scale_init=config.layer_scale_init, drop_path=next(rates)) for _ in range(depth)
            ]
            stages.append(ConvNeXtStage(downsample, blocks))
        head = ConvNeXtHead(widths[-1], num_classes, drop_rate=config.drop_rate) if num_classes is not None else None
        super().__init__(stem, stages, in_channels=in_channels, head=head)
        _init_weights(self)


VARIANTS: dict[str, ConvNeXtConfig] = {
    # name: depths, widths, torchvision's stochastic depth rate
    "convnext_tiny": ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768), drop_path_rate=0.1),
    "convnext_small": ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768), drop_path_rate=0.4),
    "convnext_base": ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024), drop_path_rate=0.5),
    "convnext_large": ConvNeXtConfig((3, 3, 27, 3), (192, 384, 768, 1536), drop_path_rate=0.5),
}

# What scaling, NetAdapt and the search spaces may change (``family.DesignFields``).
DESIGN = DesignFields(channels=("widths",), depths=("depths",))

# torchvision's IMAGENET1K_V1 weights (``weights.transforms()``): resize 236, center crop 224, bilinear.
PREPROCESSING = Preprocessing(input_size=224, crop_pct=224 / 236, interpolation="bilinear")

# torchvision's IMAGENET1K_V1 weight metadata (``ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta``). Its
# ``num_params`` includes the head (layer norm 2C + fc 1000C + 1000) and its ``_ops`` GFLOPS count
# multiply-adds (ResNet-50: 4.089), so the backbone's figures are ``num_params - head`` and ``2 x _ops``
# (no batch norm or pooling in the backbone, so the seed's convention is exactly 2 x MACs).
_TORCHVISION_METADATA = {  # name: (num_params, _ops, acc@1)
    "convnext_tiny": (28_589_128, 4.456, 82.520),
    "convnext_small": (50_223_688, 8.684, 83.616),
    "convnext_base": (88_591_464, 15.355, 84.062),
    "convnext_large": (197_767_336, 34.361, 84.414),
}
PUBLISHED = {
    name: Published(
        round((params - (1002 * VARIANTS[name].widths[-1] + 1000)) / 1e6, 2),
        round(2 * ops, 3),
        top1=top1,
        source="torchvision weight metadata",
        gflops_decimals=3,
        top1_source=TORCHVISION_V1,
    )
    for name, (params, ops, top1) in _TORCHVISION_METADATA.items()
}

register_family("convnext", VARIANTS, ConvNeXt, design=DESIGN, preprocessing=PREPROCESSING, published=PUBLISHED)
