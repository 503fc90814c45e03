"""What is special about the Inception families: auxiliary heads in training, BN-Inception's table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.models.googlenet import TransformInput


def _has_aux(model: nn.Module) -> bool:
    return any(".aux" in name for name, _ in model.named_parameters())


def test_googlenet_aux_logits_in_training_only_and_every_parameter_learns() -> None:
    model = create_model("googlenet", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 5) and [a.shape for a in out.aux_logits] == [(2, 5), (2, 5)]
    (out.logits.sum() + 0.3 * sum(a.sum() for a in out.aux_logits)).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    with torch.no_grad():
        assert isinstance(model.eval()(torch.randn(1, 3, 64, 64)), torch.Tensor)


# A shallower Inception v3 (one block per grid size) runs the same code paths in a fraction of the time.
_SMALL_V3 = {"pool_channels": (32,), "mid_widths": (128,), "num_c_blocks": 1}


@pytest.mark.parametrize(("name", "overrides", "size"), [("googlenet", {}, 64), ("inception_v3", _SMALL_V3, 75)])
def test_no_aux_heads_without_classifier_or_when_switched_off(name: str, overrides: dict, size: int) -> None:
    assert not _has_aux(create_model(name, features_only=True, **overrides))
    plain = create_model(name, num_classes=5, aux_logits=False, **overrides).train()
    assert not _has_aux(plain)
    assert plain(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_inception_v3_aux_head_in_training() -> None:
    model = create_model("inception_v3", num_classes=5, **_SMALL_V3).train()
    with pytest.raises(ValueError, match="needs input >= 299"):
        model(torch.randn(2, 3, 298, 298))
    with torch.no_grad():  # batch 2: the aux head's last batch norm sees a 1x1 map
        out = model(torch.randn(2, 3, 299, 299))
    assert out.logits.shape == (2, 5) and [a.shape for a in out.aux_logits] == [(2, 5)]


def test_transform_input_maps_imagenet_normalised_to_minus_one_one() -> None:
    image = torch.rand(1, 3, 4, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(TransformInput()((image - mean) / std), image * 2 - 1)


def test_bninception_follows_the_paper_table() -> None:
    model = create_model("bninception", features_only=True)
    assert model.level_channels == (64, 192, 320, 608, 1024)
    stride16, stride32 = model.stages[3], model.stages[4]
    # 3c and 4e are the stride-2 blocks that open their levels: no 1x1 branch, max pool passes through.
    assert (stride16.downsample.out_channels, stride32.downsample.out_channels) == (576, 1056)
    assert [b.out_channels for b in model.stages[2].blocks] == [256, 320]
    assert [b.out_channels for b in stride16.blocks] == [576, 576, 608, 608]
    assert [b.out_channels for b in stride32.blocks] == [1024, 1024]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)  # batch norm after every conv
    assert max(c.kernel_size[0] for c in convs[1:]) == 3  # no 5x5: two 3x3 instead
    assert isinstance(stride32.blocks[1].branches[-1][0], nn.MaxPool2d)  # 5b: max pool + proj
    x = torch.randn(1, 3, 65, 65)  # padded strides: every level is ceil(65 / stride)
    assert [f.shape[-1] for f in model.eval().forward_features(x)] == [33, 17, 9, 5, 3]


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "inception_v4", "inception_resnet_v2", "bninception"])
def test_output_stride_is_refused_in_one_line(name: str) -> None:
    # Unpadded convs and pools, and reductions that stride in parallel branches: no generic dilation.
    with pytest.raises(ValueError, match="does not support dilation") as error:
        create_model(name, features_only=True, output_stride=16)
    assert "\n" not in str(error.value)


def test_aux_classifier_models_keep_the_timm_head_calls() -> None:
    model = create_model("googlenet", num_classes=5).eval()
    assert model.get_classifier() is model.head.fc
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x)[-1], pre_logits=True)
        torch.testing.assert_close(model.head.fc(pooled), model(x))
