"""``output_stride``: keep the resolution of the last stages with dilated convolutions (DeepLab).

Every stage past ``output_stride`` loses its downsampling: its strided convs and pools run at stride 1,
and from that point on each spatial conv is dilated by the stride it gave up, so its receptive field
(and the meaning of pretrained weights) stays what it was. The convention is torchvision's
``replace_stride_with_dilation``: the convs that used to stride (one per branch) keep the previous
dilation, the convs after them take the new one. A pool whose kernel equals its stride (2x2/2) becomes the identity.

The rewrite is generic over ``Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` modules in execution order; a
family whose stages downsample any other way (functional pooling, unpadded convs) does not set
``Backbone.supports_output_stride``, and the strides are re-measured afterwards, so a rewrite that did
not give the requested strides is an error, not a silent wrong model.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vision_backbones.shapes import measure_levels

OUTPUT_STRIDES = (8, 16, 32)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _dilate_conv(conv: nn.Conv2d, dilation: int, family: str) -> None:
    kernel = _pair(conv.kernel_size)
    if max(kernel) == 1:
        return
    if isinstance(conv.padding, str):
        raise ValueError(
            f"output_stride: {family} has a conv with padding={conv.padding!r}; expected padding in pixels"
        )
    same = tuple((k - 1) // 2 * d for k, d in zip(kernel, _pair(conv.dilation)))
    if _pair(conv.padding) != same or any(k % 2 == 0 for k in kernel):
        raise ValueError(f"output_stride: {family} has an unpadded or even-kernel conv {conv}; expected 'same' padding")
    conv.dilation = (dilation, dilation)
    conv.padding = tuple((k - 1) // 2 * dilation for k in kernel)


def _dilate_stage(stage: nn.Module, *, before: int, after: int, downsamples: bool, family: str) -> None:
    dilation = before
    strided_seen = not downsamples
    modules = dict(stage.named_modules())
    for name, child in list(modules.items()):  # registration order, which is execution order here
        if isinstance(child, nn.Conv2d):
            if max(_pair(child.stride)) > 1:  # every conv that used to stride (each branch's) keeps the old dilation
                child.stride = (1, 1)
                _dilate_conv(child, before, family)
                strided_seen, dilation = True, after
                continue
            _dilate_conv(child, dilation, family)
        elif isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)) and max(_pair(child.stride)) > 1:
            kernel = _pair(child.kernel_size)
            if kernel == _pair(child.stride):
                parent_name, _, attribute = name.rpartition(".")
                setattr(modules[parent_name], attribute, nn.Identity())  # a 2x2/2 pool at stride 1 only shrinks
            elif all(k % 2 == 1 for k in kernel):
                child.stride, child.padding = (1, 1), (kernel[0] // 2, kernel[1] // 2)
            else:
                raise ValueError(f"output_stride: {family} has a pool {child} that cannot run at stride 1")
            if not strided_seen:
                strided_seen, dilation = True, after


def dilate(model: Any, output_stride: int) -> None:
    """Rewrite ``model`` (a ``Backbone``: this module imports only ``shapes``) in place so that no level is
    coarser than ``output_stride``."""
    family = type(model).__name__
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    if not type(model).supports_output_stride:
        raise ValueError(
            f"output_stride={output_stride}: {family} does not support dilation; expected output_stride=None"
        )
    nominal = model.level_strides
    dilation = 1
    for index, stage in enumerate(model.stages):
        if nominal[index] <= output_stride:
            continue
        factor = nominal[index] // nominal[index - 1] if index else nominal[0]
        if factor not in (1, 2):
            raise ValueError(f"output_stride: stage {index} of {family} downsamples by {factor}; expected 1 or 2")
        after = dilation * factor
        _dilate_stage(stage, before=dilation, after=after, downsamples=factor > 1, family=family)
        dilation = after
    if model.head_conv is not None:
        for module in model.head_conv.modules():
            if isinstance(module, nn.Conv2d):
                _dilate_conv(module, dilation, family)
    channels, strides = measure_levels(model, model.probe_size())
    expected = tuple(min(s, output_stride) for s in nominal)
    if strides != expected or channels != model.level_channels:
        raise ValueError(f"output_stride={output_stride} gave strides {strides} for {family}; expected {expected}")
    model.level_strides = strides
    model.output_stride = output_stride
