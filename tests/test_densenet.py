"""DenseNet: memory-efficient checkpointing changes memory, not results (nor running statistics);
legacy torchvision key spelling."""

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.convert import get_reference, rename_keys


def test_memory_efficient_matches() -> None:
    torch.manual_seed(0)
    small = dict(depths=(2, 2, 2, 2), growth_rate=8, stem_channels=16, features_only=True)
    plain = create_model("densenet121", **small)
    efficient = create_model("densenet121", memory_efficient=True, **small)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    losses = [sum(f.sum() for f in model.forward_features(x)) for model in (plain, efficient)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[0], losses[1])
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    # The recomputation in the backward pass must not update the norms' running statistics again.
    for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_transitions_compress_channels() -> None:
    model = create_model("densenet121", features_only=True)
    # 64 + 6*32 = 256 -> 128 + 12*32 = 512 -> 256 + 24*32 = 1024 -> 512 + 16*32 = 1024
    assert model.out_channels == (64, 256, 512, 1024, 1024)


def test_legacy_layer_keys() -> None:
    reference = get_reference("torchvision", "densenet121")
    renamed = rename_keys(reference, {"features.denseblock2.denselayer12.norm.2.running_var": torch.ones(1)})
    assert list(renamed) == ["stages.2.block.layers.11.norm2.running_var"]


@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_drops_the_last_transition_pools(output_stride: int) -> None:
    small = dict(depths=(1, 1, 1, 1), growth_rate=8, stem_channels=16, features_only=True)
    plain = create_model("densenet121", **small)
    model = create_model("densenet121", output_stride=output_stride, **small).eval()
    assert model.strides == tuple(min(s, output_stride) for s in (2, 4, 8, 16, 32))
    model.load_state_dict(plain.state_dict())  # the pools carry no weights: same keys
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == {16: 2, 8: 1}[output_stride]  # a 2x2/2 pool at stride 1 becomes the identity
    with torch.no_grad():
        last = model(torch.randn(1, 3, 64, 64))[-1]
    assert last.shape[-2:] == (64 // output_stride, 64 // output_stride)


def test_layer_drop_rate_is_the_dense_layer_dropout() -> None:
    model = create_model("densenet121", layer_drop_rate=0.2, drop_rate=0.1)
    assert {layer.drop_rate for layer in model.modules() if hasattr(layer, "memory_efficient")} == {0.2}
    assert model.head.dropout.p == 0.1
