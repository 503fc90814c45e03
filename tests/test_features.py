"""What downstream code relies on: a pruned features model under fx / export / compile / DDP, timm's API,
gradient checkpointing, output_stride, and converters that build what create_model builds."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import assert_close_to_scale
from registry_cases import MODEL_CASES
from torch import nn

from vision_backbones import create_model, list_models
from vision_backbones.registry import build_on_meta, get_entry


def _pruned() -> nn.Module:
    return create_model("resnet18", features_only=True, out_indices=(1, 2, 3)).eval()  # stride 32 dropped


def test_pruned_model_counts_only_kept_parameters() -> None:
    full = create_model("resnet18", features_only=True)
    kept = sum(p.numel() for name, p in full.named_parameters() if not name.startswith("stages.4."))
    assert sum(p.numel() for p in _pruned().parameters()) == kept < sum(p.numel() for p in full.parameters())
    with pytest.raises(AttributeError):
        _pruned().out_indices = (0,)  # fixed at construction: the model is built for them


def test_fx_export_compile_on_pruned_model() -> None:
    model = _pruned()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
    assert [f.shape[1] for f in expected] == [64, 128, 256]
    traced = torch.fx.symbolic_trace(model)
    batch, height, width = (
        torch.export.Dim("batch", max=64),
        torch.export.Dim("h", min=2, max=16),
        torch.export.Dim("w", min=2, max=16),
    )
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch, 2: 32 * height, 3: 32 * width}})
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # fullgraph: no graph breaks anywhere
    other = torch.randn(3, 3, 96, 64)
    with torch.no_grad():
        for runner in (traced, program.module(), compiled):
            for a, b in zip(runner(x), expected, strict=True):
                assert_close_to_scale(a, b, 1e-5)
        assert [f.shape for f in program.module()(other)] == [f.shape for f in model(other)]


def _ddp_worker(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(create_model("resnet18", features_only=True, out_indices=(1, 2)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):  # the second iteration is where unused parameters used to crash DDP
        torch.manual_seed(rank * 10 + step)
        loss = sum(f.mean() for f in model(torch.randn(2, 3, 64, 64)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    results[rank] = torch.cat([p.detach().flatten() for p in model.parameters()]).sum().item()
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_on_pruned_model() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(port, results), nprocs=2, join=True)
    assert results[0] == pytest.approx(results[1], rel=1e-6)  # replicas stay in sync


def test_timm_style_api() -> None:
    model = create_model("resnet18", pretrained=False, in_chans=1, num_classes=5)
    assert model.in_channels == 1 and model.num_features == 512
    assert isinstance(model.get_classifier(), nn.Linear) and model.get_classifier().out_features == 5
    x = torch.randn(2, 1, 64, 64)
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)
    model.reset_classifier(7)
    deepest = model.forward_features(x)[-1]
    assert model.forward_head(deepest).shape == (2, 7)
    assert model.forward_head(deepest, pre_logits=True).shape == (2, 512)
    info = create_model("resnet18", features_only=True, out_strides=(8, 32)).feature_info
    assert (
        info.channels() == [128, 512] and info.reduction() == [8, 32] and info.module_name() == ["stages.2", "stages.4"]
    )
    with pytest.raises(ValueError, match="no model hub"):
        create_model("resnet18", pretrained=True)


@pytest.mark.parametrize(
    "name", [n for n in ["resnet18", "efficientnet_b0", "vovnet19_slim", "densenet121"] if n in list_models()]
)
def test_grad_checkpointing_equals_plain_run(name: str) -> None:
    plain = create_model(name, num_classes=4)
    checkpointed = create_model(name, num_classes=4)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, checkpointed):
        torch.manual_seed(5)  # the same dropout / drop-path draws in both runs
        model.train()
        model(x).square().mean().backward()
    for (key, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-4, msg=key)
    for (key, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=key)  # running statistics updated once, not twice
    with pytest.raises(ValueError, match="set_grad_checkpointing"):
        torch.jit.script(checkpointed)


def _dilatable() -> list[str]:
    names = []
    for name in list_models():
        if getattr(get_entry(name).build, "supports_output_stride", False):
            names.append(name)
    return names


@pytest.mark.parametrize("name", [c for c in MODEL_CASES if c.values[0] in _dilatable()])
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride(name: str, output_stride: int) -> None:
    model = build_on_meta(name, features_only=True, output_stride=output_stride)
    undilated = build_on_meta(name, features_only=True)
    assert model.strides == tuple(min(s, output_stride) for s in undilated.strides)
    assert model.out_channels == undilated.out_channels
    assert model.output_shape()[model.out_names[-1]].stride == output_stride
    size = 2 * max(64, model.min_input_size)
    maps = model(torch.empty(1, 3, size, size, device="meta"))
    assert maps[-1].shape[-1] == -(-size // output_stride)


def test_output_stride_matches_torchvision_dilation() -> None:
    torchvision = pytest.importorskip("torchvision")
    from vision_backbones.convert import from_torchvision

    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    ours = from_torchvision("resnet50", reference.state_dict(), output_stride=8)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert_close_to_scale(ours(x), reference(x))


def test_unsupported_output_stride_is_one_line() -> None:
    unsupported = [n for n in list_models() if n not in _dilatable()]
    if not unsupported:
        pytest.skip("every family supports output_stride")
    with pytest.raises(ValueError, match=r"does not support dilation") as error:
        create_model(unsupported[0], output_stride=16)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="output_stride must be one of"):
        create_model("resnet18", output_stride=4)


def test_converters_take_create_model_arguments() -> None:
    torchvision = pytest.importorskip("torchvision")
    from vision_backbones.convert import from_torchvision

    reference = torchvision.models.resnet18().eval()
    model = from_torchvision(
        "resnet18", reference.state_dict(), features_only=True, out_strides=(8, 16), frozen_stages=2
    )
    assert model.strides == (8, 16) and len(model.stages) == 4 and model.frozen_stages == 2
    full = from_torchvision("resnet18", reference.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], full.forward_features(x)[3])


def test_wrong_layout_names_the_override_that_fits(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    from vision_backbones.convert import convert
    from vision_backbones.weights import save_weights

    _, overrides, state_dict = convert("timm", "ese_vovnet39b", timm.create_model("ese_vovnet39b").state_dict())
    path = save_weights(state_dict, tmp_path / "no_metadata.safetensors")
    with pytest.raises(ValueError, match="fit the timm:ese_vovnet39b layout") as error:
        create_model("vovnet39", pretrained=path)
    assert "\n" not in str(error.value)
    create_model("vovnet39", pretrained=path, **overrides)  # the named override loads


def test_bad_level_arguments_are_one_line() -> None:
    cases = [
        (dict(out_strides=(8, 64)), r"\[64\] not available; this model has levels at strides \(2, 4, 8, 16, 32\)"),
        (dict(out_strides=(8,), out_indices=(2,)), "not both"),
        (dict(freeze_until_stride=3), r"freeze_until_stride=3 is not a level stride"),
        (dict(frozen_stages=9), r"frozen_stages must be an int in -1..5"),
        (dict(include_head_conv=False), "has no head conv"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            create_model("resnet18", features_only=True, **kwargs)
        assert "\n" not in str(error.value)
    model = create_model("resnet18").train()
    with pytest.raises(ValueError, match="batch of 1 image"):
        model(torch.randn(1, 3, 32, 32))


def test_levels_doc_is_current() -> None:
    from pathlib import Path

    from vision_backbones.levels import levels_markdown

    doc = (Path(__file__).parents[1] / "docs" / "levels.md").read_text()
    assert doc == levels_markdown(), "docs/levels.md is stale: run python -m vision_backbones.levels > docs/levels.md"
