"""The fast meta-device batch norm gives what the CPU kernel gives (shape, strides, dtype, saved
statistics) and refuses what it refuses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import meta_batch_norm


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_meta_batch_norm_matches_the_cpu_kernel(training: bool, channels_last: bool) -> None:
    meta_batch_norm.register()
    meta_batch_norm.register()  # idempotent
    x = torch.randn(2, 8, 5, 7)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    bn = nn.BatchNorm2d(8)
    args = (bn.weight.detach(), bn.bias.detach(), bn.running_mean.clone(), bn.running_var.clone())
    real = torch.ops.aten.native_batch_norm(x, *args, training, 0.1, 1e-5)
    meta_args = tuple(t.to("meta") for t in args)
    fake = torch.ops.aten.native_batch_norm(x.to("meta"), *meta_args, training, 0.1, 1e-5)
    for a, b in zip(real, fake):
        assert (tuple(a.shape), a.stride(), a.dtype) == (tuple(b.shape), b.stride(), b.dtype)
        assert b.is_meta
    if not training:
        real = torch.ops.aten._native_batch_norm_legit_no_training(x, *args, 0.1, 1e-5)
        fake = torch.ops.aten._native_batch_norm_legit_no_training(x.to("meta"), *meta_args, 0.1, 1e-5)
        for a, b in zip(real, fake):
            assert (tuple(a.shape), a.stride(), a.dtype) == (tuple(b.shape), b.stride(), b.dtype)


def test_meta_batch_norm_refuses_a_weight_of_other_channels() -> None:
    meta_batch_norm.register()
    weight = torch.ones(8, device="meta")
    with pytest.raises(RuntimeError, match="has 8 elements, expected 6"):
        torch.ops.aten.native_batch_norm(
            torch.empty(1, 6, 4, 4, device="meta"), weight, None, None, None, True, 0.1, 1e-5
        )
