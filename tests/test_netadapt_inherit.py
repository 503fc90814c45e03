"""NetAdapt's weight inheritance keeps the filters of largest L2 norm (``budget.inherit``): with some
filters made zero, the narrower network keeps exactly the others, in every tensor their channels
reach, and computes what the wider one did."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from vision_backbones.budget.inherit import inherit_weights
from vision_backbones.budget.knobs import Knob, with_channels
from vision_backbones.registry import create_model

CASES = {  # a plain conv net with residual adds, inverted residuals, and a concatenating one
    "resnet18": ({"depths": (1, 2, 1, 1), "stem_channels": 8, "widths": (16, 16, 16, 16)}, Knob("widths", 1), 8),
    "mobilenet_v2": ({"width_multiplier": 0.5, "depth_multiplier": 0.5}, Knob("rows.out_channels", 2), 16),
    "vovnet19_slim": (
        {"stem_channels": (16, 16, 32), "mid_widths": (16, 16, 24, 24), "widths": (32, 48, 64, 64)},
        Knob("mid_widths", 1),
        8,
    ),
    "regnet_x_400mf": (
        {"depths": (1, 1, 1, 1), "stem_channels": 16, "widths": (16, 32, 48, 64)},
        Knob("widths", 1),
        16,
    ),
}  # RegNet: grouped convs whose group count follows the width (32 -> 16 channels, 2 groups of 16 -> 1)


def _dropped(have: int, want: int) -> list[int]:
    """The channels a dim of ``have`` loses to become ``want``: a seeded choice, the same for every
    tensor of that change (so coupled tensors agree), never simply the last ones."""
    return sorted(random.Random(have * 1000 + want).sample(range(have), have - want))


def _narrowed_pair(name: str) -> tuple[nn.Module, nn.Module]:
    start, knob, width = CASES[name]
    torch.manual_seed(0)
    wide = create_model(name, num_classes=10, **start).eval()
    narrow = create_model(name, num_classes=10, **with_channels(name, start, knob, width)).eval()
    return wide, narrow


def _zero_dropped_filters(wide: nn.Module, narrow: nn.Module) -> None:
    """Every filter (conv output channel, with its bias) and norm channel the narrower network lacks
    becomes zero, and so does the channel after its norm and activation."""
    narrower = dict(narrow.named_modules())
    with torch.no_grad():
        for name, module in wide.named_modules():
            weight = getattr(module, "weight", None)
            if not isinstance(module, (nn.Conv2d, nn.modules.batchnorm._BatchNorm)) or weight is None:
                continue
            have, want = weight.shape[0], narrower[name].weight.shape[0]
            if want < have:
                for tensor in (module.weight, module.bias):
                    if tensor is not None:
                        tensor[_dropped(have, want)] = 0


def _expected(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """``old`` without the dropped channels of each narrowed dim."""
    for dim, (have, want) in enumerate(zip(old.shape, new.shape)):
        if want < have:
            keep = sorted(set(range(have)) - set(_dropped(have, want)))
            old = old.index_select(dim, torch.tensor(keep))
    return old


@pytest.mark.parametrize("name", sorted(CASES))
def test_inheritance_keeps_the_large_norm_filters_and_the_function(name: str) -> None:
    wide, narrow = _narrowed_pair(name)
    _zero_dropped_filters(wide, narrow)
    report = inherit_weights(narrow, wide)
    assert report.graph_error is None and report.fallbacks == [] and report.groups >= 1
    theirs = wide.state_dict()
    changed = {k: v for k, v in narrow.state_dict().items() if v.shape != theirs[k].shape}
    filters = {(theirs[k].shape[0], v.shape[0]) for k, v in changed.items()}  # (have, want) of each narrowed layer
    assert changed
    grouped = {
        f"{n}.weight" for n, m in wide.named_modules() if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels
    }
    checked = 0
    for key, tensor in changed.items():
        inputs = (theirs[key].shape[1], tensor.shape[1]) if tensor.ndim > 1 else (0, 0)
        if (inputs[0] != inputs[1] and inputs not in filters) or key in grouped:
            continue  # reads a concatenation or is grouped: not one index per dim (the output checks them)
        assert torch.equal(tensor, _expected(theirs[key], tensor)), key  # the nonzero filters, nothing else
        checked += 1
    assert checked >= len(changed) // 2
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(narrow(x), wide(x), atol=1e-5, rtol=1e-4)


def test_inheritance_is_not_truncation() -> None:
    """The filters kept are the large ones even when the zero filters lead: a leading slice would
    keep exactly the zeros."""
    start = {"depths": (1, 1, 1, 1), "stem_channels": 8, "widths": (16, 16, 16, 16)}
    torch.manual_seed(0)
    wide = create_model("resnet18", num_classes=10, **start).eval()
    narrow = create_model("resnet18", num_classes=10, **with_channels("resnet18", start, Knob("widths", 3), 8))
    with torch.no_grad():
        for module in wide.modules():
            if isinstance(module, nn.Conv2d) and module.out_channels == 16:
                module.weight[:8] *= 1e-3  # tiny, not zero: a ranking by norm, not a test for zeros
    inherit_weights(narrow, wide)
    wider = dict(wide.named_modules())
    kept = {
        n: m.weight
        for n, m in narrow.named_modules()
        if isinstance(m, nn.Conv2d) and m.out_channels == 8 and wider[n].out_channels == 16
    }
    assert len(kept) == 3  # the last stage's two convs and its projection shortcut
    for name, weight in kept.items():
        expected = wider[name].weight[8:]
        assert torch.equal(weight, expected if weight.shape[1] == 16 else expected[:, 8:]), name


@pytest.mark.parametrize(
    ("name", "start", "knob", "width"),
    [
        ("shufflenet_v2_x0_5", {"depths": (1, 2, 1), "widths": (48, 96, 192)}, Knob("widths", 1), 48),
        ("vovnet39", {"depths": (1, 1, 1, 1), "widths": (64, 96, 128, 128), "mid_widths": (16, 16, 24, 24)},
         Knob("widths", 2), 64),
    ],
)  # fmt: skip
def test_inheritance_fills_every_family_tensor(name: str, start: dict, knob: Knob, width: int) -> None:
    """ShuffleNet's channel shuffle is beyond Torch-Pruning's tracer: every changed tensor is then a
    reported leading-slice fallback; the network still runs and every shape is right."""
    torch.manual_seed(0)
    wide = create_model(name, num_classes=10, **start)
    narrow = create_model(name, num_classes=10, **with_channels(name, start, knob, width))
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    report = inherit_weights(narrow, wide)
    assert all(torch.equal(before[k], v) for k, v in wide.state_dict().items())  # the source is left as it was
    assert (report.graph_error is None) == (report.groups > 0)
    changed = [k for k, v in narrow.state_dict().items() if v.shape != before[k].shape]
    assert changed and (
        report.graph_error is None or set(report.fallbacks) >= {k for k in changed if k.endswith("weight")}
    )
    assert narrow(torch.randn(1, 3, 64, 64)).shape == (1, 10)
