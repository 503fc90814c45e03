"""Drop-in adapters: any backbone as a torchvision detection backbone or a segmentation-models-pytorch encoder.

Both are sized only from the contract (``out_channels``, ``strides``), never from a channel count
written per family. torchvision and segmentation-models-pytorch are imported only when an adapter
is built, so the core stays torch + safetensors.

    >>> from torchvision.models.detection import FasterRCNN
    >>> model = FasterRCNN(detection_backbone("vovnet39"), num_classes=91)

    >>> import segmentation_models_pytorch as smp
    >>> register_smp_encoders()
    >>> model = smp.Unet("vb-resnet50", encoder_weights=None, classes=2)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vision_backbones.backbone import Backbone
from vision_backbones.registry import create_model

SMP_PREFIX = "vb-"


def _features_model(name_or_model: str | Backbone, out_strides: Sequence[int], **create_model_kwargs: Any) -> Backbone:
    if isinstance(name_or_model, Backbone):
        if create_model_kwargs:
            raise ValueError(
                f"create_model arguments {sorted(create_model_kwargs)} need a model name, not a built model"
            )
        if not name_or_model.features_only or tuple(name_or_model.strides) != tuple(out_strides):
            raise ValueError(
                f"expected a features_only model with strides {tuple(out_strides)}, got strides {name_or_model.strides}; "
                "pass the model name instead and let the adapter build it"
            )
        return name_or_model
    if not isinstance(name_or_model, str):
        raise ValueError(f"expected a model name or a Backbone, got {type(name_or_model).__name__}")
    return create_model(name_or_model, features_only=True, out_strides=tuple(out_strides), **create_model_kwargs)


class DetectionBackbone(nn.Module):
    """Backbone + torchvision FPN: ``forward`` gives ``OrderedDict[str, Tensor]`` with keys ``"0"``, ``"1"``, ...
    (and ``"pool"`` / ``"p6"``, ``"p7"``), the names torchvision's detection heads and RoI pooling expect;
    ``out_channels`` is the FPN width, an int, as ``FasterRCNN``, ``RetinaNet`` and ``MaskRCNN`` require."""

    def __init__(self, body: Backbone, *, fpn_channels: int, extra: Literal["maxpool", "p6p7"] | None) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        if not isinstance(fpn_channels, int) or fpn_channels < 1:
            raise ValueError(f"fpn_channels must be a positive int, got {fpn_channels!r}")
        if extra not in ("maxpool", "p6p7", None):
            raise ValueError(f"extra must be 'maxpool', 'p6p7' or None, got {extra!r}")
        blocks = {"maxpool": LastLevelMaxPool(), "p6p7": LastLevelP6P7(fpn_channels, fpn_channels), None: None}[extra]
        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.out_channels), fpn_channels, extra_blocks=blocks)
        self.out_channels = fpn_channels
        self.names = [str(i) for i in range(len(body.out_channels))]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        levels = self.body(x)
        return self.fpn(OrderedDict(zip(self.names, levels)))


def detection_backbone(
    name_or_model: str | Backbone,
    *,
    out_strides: Sequence[int] = (4, 8, 16, 32),
    fpn_channels: int = 256,
    extra: Literal["maxpool", "p6p7"] | None = "maxpool",
    **create_model_kwargs: Any,
) -> DetectionBackbone:
    """A torchvision detection backbone with an FPN over the levels at ``out_strides``.

    Faster / Mask R-CNN: the defaults (strides 4-32 plus a max-pooled level: the five maps their
    default anchors expect). RetinaNet: ``out_strides=(8, 16, 32), extra="p6p7"``. Any ``create_model``
    argument (``pretrained``, ``freeze_until_stride``, ``norm_eval``, overrides) passes through.
    """
    body = _features_model(name_or_model, out_strides, **create_model_kwargs)
    return DetectionBackbone(body, fpn_channels=fpn_channels, extra=extra)


class SmpEncoder(nn.Module):
    """A backbone with segmentation-models-pytorch's encoder conventions.

    ``forward`` returns ``[x, stride 2, stride 4, ..., stride 2**depth]``; a family without a stride-2
    level (ShuffleNet, AlexNet) gives an empty 0-channel map there, as smp's own timm encoders do for
    transformer-style models. ``out_channels`` starts with the input channels.
    """

    def __init__(
        self,
        model_name: str,
        *,
        depth: int = 5,
        output_stride: int = 32,
        in_channels: int = 3,
        **create_model_kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or not 1 <= depth <= 5:
            raise ValueError(f"depth must be an int in 1..5, got {depth!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        self.model_name = model_name
        self._depth = depth
        self._output_stride = output_stride
        self._kwargs = dict(create_model_kwargs)
        self.model = self._build(in_channels)

    def _build(self, in_channels: int) -> Backbone:
        from vision_backbones.registry import build_on_meta

        wanted = [2**i for i in range(1, self._depth + 1)]
        kwargs = {k: v for k, v in self._kwargs.items() if k != "pretrained"}
        available = build_on_meta(self.model_name, features_only=True, in_channels=in_channels, **kwargs).level_names
        strides = [s for s in wanted if f"stride{s}" in available]
        if any(f"stride{s}" not in available for s in wanted[1:]):
            raise ValueError(
                f"{self.model_name} has levels {tuple(available)}; an smp encoder of depth {self._depth} needs strides {tuple(wanted[1:])}"
            )
        output_stride = None if self._output_stride == 32 else self._output_stride
        self._has_stride2 = 2 in strides
        return create_model(
            self.model_name,
            features_only=True,
            out_strides=tuple(strides),
            in_channels=in_channels,
            output_stride=output_stride,
            **self._kwargs,
        )

    @property
    def in_channels(self) -> int:
        return self.model.in_channels

    @property
    def out_channels(self) -> list[int]:
        channels = list(self.model.out_channels)
        return [self.in_channels, *([] if self._has_stride2 else [0]), *channels]

    @property
    def output_stride(self) -> int:
        return int(min(self._output_stride, 2**self._depth))

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """Rebuild for ``in_channels``, keeping the weights (the RGB stem is summed or tiled)."""
        if in_channels == self.in_channels:
            return
        from vision_backbones.weights import load_pretrained

        old = self.model
        self.model = self._build(in_channels)
        load_pretrained(self.model, old.state_dict(), source=f"{self.model_name} ({old.in_channels} channels)")

    def make_dilated(self, output_stride: int) -> None:
        """smp calls this after construction; the dilation is already built in (``output_stride=``)."""
        if output_stride != self._output_stride:
            raise ValueError(f"this encoder was built with output_stride={self._output_stride}, got {output_stride}")

    def get_stages(self) -> dict[int, Sequence[nn.Module]]:
        return {stride: [self.model.stages[index]] for stride, index in zip(self.model.strides, self.model.out_indices)}

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.model(x)
        if not self._has_stride2:
            batch, _, height, width = x.shape
            features = [torch.empty(batch, 0, height // 2, width // 2, dtype=x.dtype, device=x.device), *features]
        return [x, *features]


def smp_encoder(
    name: str, *, depth: int = 5, output_stride: int = 32, in_channels: int = 3, **create_model_kwargs: Any
) -> SmpEncoder:
    """An encoder that segmentation-models-pytorch decoders take (``out_channels``, ``output_stride``, ``get_stages``)."""
    return SmpEncoder(name, depth=depth, output_stride=output_stride, in_channels=in_channels, **create_model_kwargs)


def register_smp_encoders(names: Sequence[str] | None = None) -> list[str]:
    """Make ``smp.Unet("vb-<name>")`` (and every other smp model) build our backbones; returns the encoder names."""
    from segmentation_models_pytorch.encoders import encoders

    from vision_backbones.registry import list_models

    registered = []
    for name in names if names is not None else list_models():
        key = SMP_PREFIX + name
        encoders[key] = {"encoder": SmpEncoder, "pretrained_settings": {}, "params": {"model_name": name}}
        registered.append(key)
    return registered
