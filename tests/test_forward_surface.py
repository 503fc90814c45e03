"""timm's forward surface on every model, the input checks, and the one stage loop that keeps nothing alive."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import torch
from registry_cases import MECHANICS_CASES, input_size_for

from vision_backbones import Backbone, create_model

# Zoph-Le's layers read any earlier layer's output, so every map so far is its loop's state by design.
KEEPS_HISTORY = {"zoph_le_plain8"}


def alive_levels_in_last_stage(model: Backbone, call: Callable[[], Any]) -> list[int]:
    """Levels whose map is still referenced while the deepest stage runs (its input, the level before, aside)."""
    refs: list[weakref.ref] = []
    seen: list[list[int]] = []

    def record(module: torch.nn.Module, args: Any, output: Any) -> None:
        refs.append(weakref.ref(model._level(output)))

    def probe(module: torch.nn.Module, args: Any) -> None:
        seen.append([i for i, ref in enumerate(refs[:-1]) if ref() is not None])

    handles = [stage.register_forward_hook(record) for stage in model.stages]
    handles.append(model.stages[-1].register_forward_pre_hook(probe))
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == 1 and len(refs) == len(model.stages)
    return seen[0]


@pytest.mark.parametrize("name", MECHANICS_CASES)
def test_forward_surface(name: str) -> None:
    # Three forwards per model (the registry is large): features, intermediates, and the classifier.
    model = create_model(name, num_classes=7).eval()
    size = input_size_for(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        maps = model.forward_features(x)
        final, intermediates = model.forward_intermediates(x)
        from_features = model.forward_head(maps)  # timm's forward_head(forward_features(x))
    logits: list[torch.Tensor] = []
    alive = alive_levels_in_last_stage(model, lambda: logits.append(model(x)))
    assert len(intermediates) == len(maps) == len(model.stages)
    for a, b in zip(intermediates, maps, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(final, maps[-1], rtol=0, atol=0)
    torch.testing.assert_close(from_features, logits[0], rtol=0, atol=0)
    if name not in KEEPS_HISTORY:
        assert alive == []  # a classification forward keeps no level but the one the next stage reads
    with pytest.raises(ValueError, match=r"torch\.float16.*torch\.float32"):
        model(x.half())


def test_forward_keeps_no_level_alive_fails_on_a_loop_that_keeps_them() -> None:
    model = create_model("resnet18", num_classes=7).eval()
    x = torch.randn(1, 3, 64, 64)
    assert alive_levels_in_last_stage(model, lambda: model(x)) == []
    features = create_model("resnet18", features_only=True, out_indices=(1, 4)).eval()
    assert alive_levels_in_last_stage(features, lambda: features(x)) == [1]  # the selected levels only
    keep_all = lambda self, x, keep, stop: Backbone._run_levels(self, x, list(range(len(self.stages))), stop)
    with mock.patch.object(type(model), "_run_levels", keep_all):
        assert alive_levels_in_last_stage(model, lambda: model(x)) == [0, 1, 2]


def test_zoph_le_is_exempt_for_its_history_only() -> None:
    model = create_model("zoph_le_plain8", num_classes=7).eval()
    assert alive_levels_in_last_stage(model, lambda: model(torch.randn(1, 3, 64, 64)))  # its state holds every map


def _stages_run(model: Backbone, call: Callable[[], Any]) -> list[int]:
    ran: list[int] = []
    handles = [stage.register_forward_pre_hook(lambda m, a, i=i: ran.append(i)) for i, stage in enumerate(model.stages)]
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    return ran


def test_intermediates_indices_and_stop_early() -> None:
    model = create_model("resnet18", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = model.forward_features(x)
        picked = model.forward_intermediates(x, indices=[1, -1], intermediates_only=True)
        final, early = model.forward_intermediates(x, indices=(0, 2), stop_early=True)
    assert [m.shape for m in picked] == [maps[1].shape, maps[-1].shape]
    torch.testing.assert_close(final, maps[2])  # timm: with stop_early the final map is the deepest requested
    assert [m.shape for m in early] == [maps[0].shape, maps[2].shape]
    assert _stages_run(model, lambda: model.forward_intermediates(x, indices=[1], intermediates_only=True)) == [0, 1]
    assert _stages_run(model, lambda: model.forward_intermediates(x, indices=[1])) == [0, 1, 2, 3, 4]
    features = create_model("resnet18", features_only=True, out_indices=(1, 2)).eval()
    assert _stages_run(features, lambda: features(x)) == [0, 1, 2]
    for bad, message in ((0, "last 0 levels"), (6, "last 6 levels"), ([5], "out of range"), ([2, 1], "not sorted")):
        with pytest.raises(ValueError, match=message):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match="True or False"):
        model.forward_intermediates(x, norm="yes")


def test_forward_head_takes_a_map_or_the_features_list() -> None:
    model = create_model("efficientnet_b0", num_classes=7, include_head_conv=False).eval()  # head conv on the head path
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(maps), model(x))
        torch.testing.assert_close(model.forward_head(maps[-1]), model(x))
        assert model.forward_head(maps, pre_logits=True).shape == (2, model.num_features)
    shallow = create_model("resnet18", num_classes=7, out_indices=(1, 2)).eval()
    with pytest.raises(ValueError, match=r"out_indices \(1, 2\)"):
        shallow.forward_head(shallow.forward_features(x))
    with pytest.raises(ValueError, match="list of maps"):
        model.forward_head([])


def test_input_dtype_and_device_errors_are_one_line() -> None:
    model = create_model("resnet18", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    for call in (model, model.forward_features, lambda t: model.forward_intermediates(t)):
        with pytest.raises(
            ValueError, match=r"input dtype torch\.float16 differs from the model's parameters \(torch\.float32\)"
        ):
            call(x.half())
        with pytest.raises(ValueError, match="input on device meta but the model's parameters are on cpu"):
            call(torch.empty(2, 3, 64, 64, device="meta"))
    model.check_input(torch.empty(2, 3, 64, 64, device="meta"))  # a meta tensor asks about its size only
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert model(x.bfloat16()).shape == (2, 7)  # autocast casts per op: another dtype is fine there
    half = create_model("resnet18", num_classes=7).half().eval()
    with pytest.raises(ValueError, match=r"torch\.float32 differs .*\(torch\.float16\)"):
        half(x)


@pytest.mark.parametrize(
    "name, size", [("googlenet", 96), ("nasnet_a_mobile", 64), ("zoph_le_plain8", 64), ("inception_v3", 299)]
)
def test_every_family_checkpoints_through_the_one_loop(name: str, size: int) -> None:
    overrides = {"pool_channels": (32,), "mid_widths": (128,), "num_c_blocks": 1} if name == "inception_v3" else {}
    plain = create_model(name, num_classes=4, **overrides)
    checkpointed = create_model(name, num_classes=4, **overrides)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True)
    x = torch.randn(2, 3, size, size)
    checkpoint = torch.utils.checkpoint.checkpoint
    for model in (plain, checkpointed):
        torch.manual_seed(5)
        with mock.patch("torch.utils.checkpoint.checkpoint", side_effect=checkpoint) as spy:
            out = model.train()(x)
        assert spy.call_count == (len(model.stages) if model is checkpointed else 0)
        aux = getattr(out, "aux_logits", [])
        (getattr(out, "logits", out).square().mean() + sum(a.square().mean() for a in aux)).backward()
    for (key, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), key
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-4, msg=key)
    for (key, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=key)  # running statistics updated once, not twice
