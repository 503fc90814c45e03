"""VGG: ``batch_norm`` adds a norm after every conv; torchvision's redundant conv bias is folded away."""

import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.convert.vgg import _fold_conv_bias


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
