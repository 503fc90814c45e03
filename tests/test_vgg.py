"""VGG: ``batch_norm`` adds a norm after every conv; torchvision's redundant conv bias is folded away."""

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.convert.rules.vgg import _fold_conv_bias


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_batch_norm_option() -> None:
    plain = create_model("vgg11", features_only=True)
    with_bn = create_model("vgg11", features_only=True, batch_norm=True)
    assert _count(plain, nn.BatchNorm2d) == 0 and _count(with_bn, nn.BatchNorm2d) == 8
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert all(m.bias is None for m in with_bn.modules() if isinstance(m, nn.Conv2d))  # the norm has the shift
    assert with_bn.state_dict().keys() == create_model("vgg11_bn", features_only=True).state_dict().keys()


def test_conv_bias_folds_into_norm() -> None:
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    reference = nn.Sequential(conv, norm).eval()
    folded = _fold_conv_bias({f"features.{k}": v for k, v in reference.state_dict().items()})
    assert "features.0.bias" not in folded
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)).eval()
    ours.load_state_dict({k.removeprefix("features."): v for k, v in folded.items()})
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(ours(x), reference(x))


def test_classifier_is_reachable_by_timm_calls() -> None:
    model = create_model("vgg11", num_classes=5, hidden_channels=64).eval()
    assert model.get_classifier() is model.head.fc and model.head.fc.in_features == 64
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x)[-1], pre_logits=True)
        assert pooled.shape == (1, 64)
        torch.testing.assert_close(model.head.fc(pooled), model(x))
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_drops_the_last_pools(output_stride: int) -> None:
    model = create_model("vgg11", features_only=True, output_stride=output_stride).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == {16: 4, 8: 3}[output_stride]  # a 2x2/2 pool at stride 1 becomes the identity
    dilations = [m.dilation[0] for m in model.stages[-1].modules() if isinstance(m, nn.Conv2d)]
    assert set(dilations) == {32 // output_stride // 2}  # the last block's convs follow the dropped pools
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[-1].shape == (1, 512, 64 // output_stride, 64 // output_stride)
