"""The fast meta-device batch norm gives what the CPU kernel gives (shape, strides, dtype, saved
statistics) and refuses what it refuses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import meta_kernels


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_meta_batch_norm_matches_the_cpu_kernel(training: bool, channels_last: bool) -> None:
    meta_kernels.register()
    meta_kernels.register()  # idempotent
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
    meta_kernels.register()
    weight = torch.ones(8, device="meta")
    with pytest.raises(RuntimeError, match="has 8 elements, expected 6"):
        torch.ops.aten.native_batch_norm(
            torch.empty(1, 6, 4, 4, device="meta"), weight, None, None, None, True, 0.1, 1e-5
        )


def _inputs() -> list[torch.Tensor]:
    x = torch.randn(2, 8, 5, 7)
    return [x, x.to(memory_format=torch.channels_last), x.transpose(2, 3), x[:, :, 1:, ::2]]


@pytest.mark.parametrize("name", meta_kernels.UNARY + meta_kernels.UNARY_INPLACE)
def test_meta_activations_match_the_cpu_kernel(name: str) -> None:
    meta_kernels.register()
    op = getattr(torch.ops.aten, name)
    for x in _inputs():
        real, fake = op(x.clone() if name.endswith("_") else x), op(x.to("meta"))
        if name.endswith("_"):  # in place: the input itself comes back
            assert fake.is_meta and real.shape == x.shape
        assert (tuple(real.shape), real.stride(), real.dtype) == (tuple(fake.shape), fake.stride(), fake.dtype), name


@pytest.mark.parametrize("channels_last", [False, True])
def test_meta_layer_norm_and_addmm_match_the_cpu_kernels(channels_last: bool) -> None:
    meta_kernels.register()
    x = torch.randn(2, 5, 7, 8)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    weight, bias = torch.randn(7, 8), torch.randn(7, 8)
    real = torch.ops.aten.native_layer_norm(x, [7, 8], weight, bias, 1e-5)
    fake = torch.ops.aten.native_layer_norm(x.to("meta"), [7, 8], weight.to("meta"), bias.to("meta"), 1e-5)
    for a, b in zip(real, fake):
        assert (tuple(a.shape), a.stride(), a.dtype) == (tuple(b.shape), b.stride(), b.dtype)
    with pytest.raises(RuntimeError, match="does not end the input's shape"):
        torch.ops.aten.native_layer_norm(x.to("meta"), [8, 7], None, None, 1e-5)
    mat1, mat2, b = torch.randn(3, 16), torch.randn(16, 10), torch.randn(10)
    real_mm = torch.ops.aten.addmm(b, mat1, mat2)
    fake_mm = torch.ops.aten.addmm(b.to("meta"), mat1.to("meta"), mat2.to("meta"))
    assert (tuple(real_mm.shape), real_mm.stride()) == (tuple(fake_mm.shape), fake_mm.stride())
    with pytest.raises(RuntimeError, match="cannot multiply"):
        torch.ops.aten.addmm(b.to("meta"), mat1.to("meta"), mat1.to("meta"))
