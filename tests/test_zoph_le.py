"""What is special to the Zoph & Le family: searched layers, concatenated skip inputs across levels."""

from __future__ import annotations

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.models.zoph_le import ZophLeLayer


def test_skip_inputs_are_concatenated_and_pooled_to_the_current_resolution() -> None:
    layers = [
        ZophLeLayer(4, 3, 3, 1),
        ZophLeLayer(6, 1, 5, 2),  # stride 2
        ZophLeLayer(8, 5, 1, 2, skips=(0,)),  # reads layer 1 (16 px) and layer 0 (32 px pooled 2x2)
        ZophLeLayer(5, 3, 3, 1, skips=(0, 1)),  # reads layer 2 (8 px), layer 0 pooled 4x4, layer 1 pooled 2x2
    ]
    model = create_model("zoph_le_plain8", features_only=True, in_channels=1, layers=layers)
    convs = [m.conv.conv for stage in model.stages for m in stage.layers]
    assert [c.in_channels for c in convs] == [1, 4, 6 + 4, 8 + 4 + 6]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 5), (5, 1), (3, 3)]
    assert model.strides == (1, 2, 4) and model.out_channels == (4, 6, 5)
    maps = model(torch.randn(2, 1, 31, 31))  # odd sizes: pooling and strided convs must agree (ceil)
    assert [tuple(m.shape[-2:]) for m in maps] == [(31, 31), (16, 16), (8, 8)]


def test_a_skip_changes_the_output() -> None:
    torch.manual_seed(0)
    plain = create_model("zoph_le_plain8", num_classes=3, layers=[(4,), (4,), (4,)]).eval()
    with_skip = create_model("zoph_le_plain8", num_classes=3, layers=[(4,), (4,), (4, 3, 3, 1, (0,))]).eval()
    assert with_skip.stages[0].layers[2].conv.conv.in_channels == 8
    x = torch.randn(1, 3, 16, 16)
    assert plain(x).shape == with_skip(x).shape == (1, 3)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([(4,), (4, 3, 3, 1, (1,))], r"skips \(1,\)"),  # the previous layer cannot be a skip
        ([(4,), (4,), (4, 3, 3, 1, (5,))], "expected distinct indices"),
        ([(4, 2)], "must be odd"),
        ([(4, 3, 3, 3)], "stride"),
        ([], "non-empty"),
        ([{"filters": 4, "dilation": 2}], "unknown fields"),
    ],
)
def test_bad_layers_are_one_line(layers: list, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        create_model("zoph_le_plain8", layers=layers)
    assert "\n" not in str(error.value)
