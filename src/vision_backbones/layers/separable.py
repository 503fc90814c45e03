"""Depthwise-separable convolution (Xception, MobileNet v1, NASNet) and channel shuffle (ShuffleNet)."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn


class SeparableConv2d(nn.Sequential):
    """Depthwise ``k x k`` conv (one filter per channel) then pointwise 1x1 conv, no norm between.

    The factorisation of a full convolution into spatial and cross-channel parts that Xception and
    MobileNet are built on: ``k*k*C + C*C'`` weights instead of ``k*k*C*C'``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            OrderedDict(
                {
                    "depthwise": nn.Conv2d(
                        in_channels,
                        in_channels,
                        kernel_size,
                        stride=stride,
                        padding=padding,
                        dilation=dilation,
                        groups=in_channels,
                        bias=bias,
                    ),
                    "pointwise": nn.Conv2d(in_channels, out_channels, 1, bias=bias),
                }
            )
        )


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave channels across ``groups`` so grouped convs see every group's output (ShuffleNet)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)
