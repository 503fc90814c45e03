"""The bad-input registry: every case is (call or CLI line, expected exception or exit code, message substring).

The contract: a bad input is one line naming the bad value and what was expected. API calls raise
``ValueError``; the CLI prints one line on stderr (no traceback) and exits 2 for usage errors, 1 for
runtime failures. Cases are grouped by the class of issue 9 they cover (``c1`` .. ``c10``) or by
area (``api``, ``weights``, ``cli``, ``data``, ``train``); ``blocked`` cases need a change outside
this test's files (registry.py / backbone.py / models) and are expected to fail until then.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.cli import main as cli_main
from vision_backbones.weights import read_checkpoint, save_weights

TINY = {"depths": (1, 1, 1, 1), "widths": (4, 8, 8, 8), "stem_channels": 4}


@dataclass(frozen=True)
class Case:
    id: str
    group: str  # c1..c10 (issue 9's classes) or api / weights / cli / data / train
    run: Any  # a callable taking the files fixture, or a CLI argv (list; "{f}" is replaced by the files folder)
    expect: Any  # an exception type, or an exit code for CLI lines
    message: str
    blocked: str = ""  # the file whose change the case waits for


# ---------------------------------------------------------------------------------------------
# files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Bad and good weight files, once per module."""
    folder = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, **TINY)
    good = folder / "good.safetensors"
    save_weights(model.state_dict(), good, model_name="resnet18", overrides=TINY)
    data = good.read_bytes()
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "header_only.safetensors").write_bytes(data[:8])
    (folder / "garbage.safetensors").write_bytes(os.urandom(256))
    (folder / "huge_header.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    (folder / "folder.safetensors").mkdir()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _meta(folder / "bad_json.safetensors", state, "{not json")
    _meta(folder / "list_json.safetensors", state, "[1, 2]")
    _meta(folder / "string_json.safetensors", state, '"depths"')
    ints = {k: (v * 100).to(torch.int64) if v.is_floating_point() else v for k, v in state.items()}
    save_weights(ints, folder / "ints.safetensors", model_name="resnet18", overrides=TINY)
    nan = dict(state)
    nan["stages.0.conv.weight"] = state["stages.0.conv.weight"].clone().index_fill_(0, torch.tensor([0]), float("nan"))
    save_weights(nan, folder / "nan.safetensors", model_name="resnet18", overrides=TINY)
    inf = dict(state)
    inf["head.fc.bias"] = torch.full_like(state["head.fc.bias"], float("inf"))
    save_weights(inf, folder / "inf_head.safetensors", model_name="resnet18", overrides=TINY)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_weights(half, folder / "half.safetensors", model_name="resnet18", overrides=TINY)
    boolean = {k: v > 0 if v.is_floating_point() else v for k, v in state.items()}
    save_weights(boolean, folder / "bool.safetensors", model_name="resnet18", overrides=TINY)
    torch.save(
        {k: torch.complex(v, v) if v.is_floating_point() else v for k, v in state.items()}, folder / "complex.pth"
    )
    torch.save({k: v.to(torch.int32) for k, v in state.items()}, folder / "ints.pth")
    torch.save([1, 2, 3], folder / "list.pth")
    torch.save({"a": 1}, folder / "not_tensors.pth")
    (folder / "garbage.pth").write_bytes(os.urandom(300))
    (folder / "empty.pth").write_bytes(b"")
    bad_float = dict(state)
    bad_float["stages.0.norm.num_batches_tracked"] = torch.tensor(1.5)
    save_weights(bad_float, folder / "float_counter.safetensors", model_name="resnet18", overrides=TINY)
    wrong = dict(state)
    wrong["stages.0.conv.weight"] = torch.zeros(5, 3, 7, 7)
    save_weights(wrong, folder / "misshaped.safetensors", model_name="resnet18", overrides=TINY)
    extra = dict(state, **{"stages.9.weight": torch.zeros(1)})
    save_weights(extra, folder / "unexpected.safetensors", model_name="resnet18", overrides=TINY)
    save_weights(
        {k: v for k, v in state.items() if not k.startswith("stages.4")},
        folder / "missing.safetensors",
        model_name="resnet18",
        overrides=TINY,
    )
    save_weights(
        state, folder / "other_arch.safetensors", model_name="resnet18", overrides={**TINY, "stem_channels": 8}
    )
    (folder / "exists.safetensors").write_bytes(b"keep me")
    (folder / "exists.onnx").write_bytes(b"keep me")
    (folder / "a_file").write_text("not a folder")
    torch.save(
        {"state_dict": {"model.x": torch.zeros(1)}, "vision_backbones": {"model": "resnet18"}}, folder / "no_ema.ckpt"
    )
    torch.save({"epoch": 1}, folder / "not_training.ckpt")
    torch.save([1], folder / "list.ckpt")
    (folder / "garbage.ckpt").write_bytes(os.urandom(100))
    torch.save(_torchvision_like(), folder / "tv_resnet18.pth")
    (folder / "bad.csv").write_text("Image,Label\nx,y\n")
    (folder / "short_row.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001\n")
    (folder / "bad_wnid.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,x01440764 1 2 3 4\n")
    (folder / "val").mkdir()
    from vision_backbones.train.samples import write_class_folders

    write_class_folders(folder / "images" / "train", classes=2, per_class=3, size=(40, 36))
    write_class_folders(folder / "images" / "val", classes=2, per_class=1, size=(40, 36), seed=1)
    (folder / "shards").mkdir()
    (folder / "shards" / "train-000000.tar").write_bytes(b"old shard")
    return folder


def _meta(path: Path, state: dict, overrides_json: str) -> None:
    from vision_backbones.weights import OVERRIDES_KEY, write_safetensors

    with open(path, "wb") as file:
        write_safetensors(file, state, {"format": "pt", OVERRIDES_KEY: overrides_json})


def _torchvision_like() -> dict[str, torch.Tensor]:
    """torchvision's resnet18 keys and shapes (fresh weights; conversion only renames)."""
    import torchvision

    return torchvision.models.resnet18().state_dict()


def _load(name: str, **kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: create_model("resnet18", pretrained=f / name, **kwargs)


def _api(**kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: create_model(kwargs.pop("name", "resnet18") if "name" in kwargs else "resnet18", **kwargs)


def _model(name: str = "resnet18", **kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: create_model(name, **kwargs)


def _forward(x: Callable[[], torch.Tensor], **kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: create_model("resnet18", **TINY, **kwargs).eval()(x())


# ---------------------------------------------------------------------------------------------
# the cases

API = [
    Case("unknown-model", "api", _model("resnet05"), ValueError, "unknown model 'resnet05'"),
    Case("unknown-model-empty", "api", _model(""), ValueError, "unknown model ''"),
    Case("unknown-model-case", "api", _model("ResNet18"), ValueError, "unknown model 'ResNet18'"),
    Case("model-name-int", "api", _model(18), ValueError, "unknown model 18"),
    Case("model-name-none", "api", _model(None), ValueError, "unknown model None"),
    Case("unknown-override", "api", _model(widht=2), ValueError, "unknown override 'widht'"),
    Case(
        "override-other-family", "api", _model(width_multiplier=0.5), ValueError, "unknown override 'width_multiplier'"
    ),
    Case(
        "override-of-mobilenet", "api", _model("mobilenet_v2", depths=(1, 1)), ValueError, "unknown override 'depths'"
    ),
    Case("num-classes-float", "c8", _model(num_classes=2.5), ValueError, "num_classes must be an int >= 1, got 2.5"),
    Case("num-classes-str", "c8", _model(num_classes="10"), ValueError, "num_classes must be an int >= 1, got '10'"),
    Case("num-classes-bool", "c8", _model(num_classes=True), ValueError, "num_classes must be an int >= 1, got True"),
    Case("num-classes-zero", "api", _model(num_classes=0), ValueError, "num_classes must be an int >= 1, got 0"),
    Case("num-classes-negative", "api", _model(num_classes=-3), ValueError, "got -3"),
    Case("num-classes-none", "api", _model(num_classes=None), ValueError, "got None"),
    Case("in-channels-zero", "api", _model(in_channels=0), ValueError, "in_channels must be a positive int, got 0"),
    Case("in-channels-negative", "api", _model(in_channels=-3), ValueError, "got -3"),
    Case("in-channels-float", "api", _model(in_channels=3.0), ValueError, "got 3.0"),
    Case("in-channels-str", "api", _model(in_channels="3"), ValueError, "got '3'"),
    Case("in-channels-bool", "api", _model(in_channels=True), ValueError, "got True"),
    Case("in-chans-conflict", "api", _model(in_chans=1, in_channels=4), ValueError, "disagree"),
    Case(
        "frozen-stages-float",
        "c8",
        _model(frozen_stages=1.5),
        ValueError,
        "frozen_stages must be an int in -1..5, got 1.5",
    ),
    Case("frozen-stages-str", "c8", _model(frozen_stages="1"), ValueError, "got '1'"),
    Case("frozen-stages-too-big", "api", _model(frozen_stages=9), ValueError, "got 9"),
    Case("frozen-stages-too-small", "api", _model(frozen_stages=-2), ValueError, "got -2"),
    Case("frozen-and-stride", "api", _model(frozen_stages=1, freeze_until_stride=8), ValueError, "not both"),
    Case(
        "freeze-stride-not-a-level",
        "api",
        _model(freeze_until_stride=3),
        ValueError,
        "freeze_until_stride=3 is not a level stride",
    ),
    Case("out-indices-out-of-range", "api", _model(features_only=True, out_indices=(0, 5)), ValueError, "out of range"),
    Case("out-indices-duplicates", "api", _model(features_only=True, out_indices=(1, 1)), ValueError, "duplicates"),
    Case("out-indices-unsorted", "api", _model(features_only=True, out_indices=(3, 1)), ValueError, "not sorted"),
    Case("out-indices-empty", "api", _model(features_only=True, out_indices=()), ValueError, "empty"),
    Case(
        "out-indices-float",
        "api",
        _model(features_only=True, out_indices=(1.5,)),
        ValueError,
        "out_indices must be a sequence of ints",
    ),
    Case(
        "out-indices-str",
        "api",
        _model(features_only=True, out_indices="12"),
        ValueError,
        "out_indices must be a sequence of ints",
    ),
    Case(
        "out-indices-int",
        "api",
        _model(features_only=True, out_indices=2),
        ValueError,
        "out_indices must be a sequence of ints",
    ),
    Case("out-indices-very-negative", "api", _model(features_only=True, out_indices=(-9,)), ValueError, "out of range"),
    Case(
        "out-strides-missing",
        "api",
        _model(features_only=True, out_strides=(3,)),
        ValueError,
        "out_strides (3,): [3] not available",
    ),
    Case("out-strides-64", "api", _model(features_only=True, out_strides=(8, 64)), ValueError, "not available"),
    Case(
        "out-strides-empty",
        "api",
        _model(features_only=True, out_strides=()),
        ValueError,
        "out_strides must be a non-empty sequence",
    ),
    Case(
        "out-strides-str",
        "api",
        _model(features_only=True, out_strides="8"),
        ValueError,
        "out_strides must be a non-empty sequence",
    ),
    Case(
        "out-strides-int",
        "api",
        _model(features_only=True, out_strides=8),
        ValueError,
        "out_strides must be a non-empty sequence",
    ),
    Case(
        "out-strides-and-indices",
        "api",
        _model(features_only=True, out_strides=(8,), out_indices=(2,)),
        ValueError,
        "not both",
    ),
    Case(
        "output-stride-4", "api", _model(output_stride=4), ValueError, "output_stride must be one of (8, 16, 32), got 4"
    ),
    Case("output-stride-12", "api", _model(output_stride=12), ValueError, "got 12"),
    Case("output-stride-str", "api", _model(output_stride="16"), ValueError, "got '16'"),
    Case(
        "output-stride-unsupported",
        "api",
        _model("alexnet", features_only=True, output_stride=16),
        ValueError,
        "AlexNet does not support dilation",
    ),
    Case("head-conv-absent", "api", _model(include_head_conv=False), ValueError, "has no head conv"),
    Case("pretrained-true", "c8", _model(pretrained=True), ValueError, "there is no model hub here"),
    Case("pretrained-int", "c8", _model(pretrained=123), ValueError, "pretrained must be a path to a weights file"),
    Case("pretrained-list", "api", _model(pretrained=["a"]), ValueError, "pretrained must be a path"),
    Case(
        "stem-channels-negative",
        "c8",
        _model(stem_channels=-16),
        ValueError,
        "stem_channels must be an int >= 1, got -16",
    ),
    Case(
        "depths-zero",
        "api",
        _model(depths=(0, 0, 0, 0)),
        ValueError,
        "depths must be a non-empty sequence of ints >= 1, got [0, 0, 0, 0]",
    ),
    Case(
        "drop-path-negative",
        "api",
        _model(drop_path_rate=-0.1),
        ValueError,
        "drop_path_rate must be in [0, 1), got -0.1",
    ),
    Case("drop-path-one", "api", _model(drop_path_rate=1.0), ValueError, "got 1.0"),
    Case(
        "input-channels",
        "api",
        _forward(lambda: torch.zeros(1, 1, 64, 64)),
        ValueError,
        "expected 3 input channels, got 1",
    ),
    Case(
        "input-too-small",
        "c1",
        _forward(lambda: torch.zeros(1, 3, 16, 16)),
        ValueError,
        "input 16x16 is smaller than this network takes",
    ),
    Case(
        "input-empty-batch",
        "c1",
        _forward(lambda: torch.zeros(1, 3, 1, 0)),
        ValueError,
        "is smaller than this network takes",
    ),
    Case(
        "input-uint8",
        "api",
        _forward(lambda: torch.zeros(1, 3, 64, 64, dtype=torch.uint8)),
        ValueError,
        "expected a floating-point tensor",
    ),
    Case("input-3d", "api", _forward(lambda: torch.zeros(3, 64, 64)), ValueError, "expected a 4-D batch"),
    Case("input-5d", "api", _forward(lambda: torch.zeros(1, 1, 3, 64, 64)), ValueError, "expected a 4-D batch"),
    Case("input-list", "api", _forward(lambda: [torch.zeros(1, 3, 64, 64)]), ValueError, "expected a torch.Tensor"),
    Case(
        "input-numpy", "api", _forward(lambda: torch.zeros(1, 3, 64, 64).numpy()), ValueError, "expected a torch.Tensor"
    ),
    Case(
        "grad-checkpointing-str",
        "api",
        lambda f: create_model("resnet18", **TINY).set_grad_checkpointing("yes"),
        ValueError,
        "set_grad_checkpointing takes True or False",
    ),
    Case(
        "reset-classifier-negative",
        "api",
        lambda f: create_model("resnet18", **TINY).reset_classifier(-1),
        ValueError,
        "num_classes must be an int >= 0, got -1",
    ),
    Case(
        "classifier-of-features",
        "api",
        lambda f: create_model("resnet18", features_only=True, **TINY).get_classifier(),
        ValueError,
        "this model has no classifier",
    ),
    Case(
        "head-of-features",
        "api",
        lambda f: create_model("resnet18", features_only=True, **TINY).forward_head(torch.zeros(1, 8, 2, 2)),
        ValueError,
        "this model has no classifier",
    ),
    Case(
        "from-torchvision-unknown",
        "api",
        lambda f: __import__("vision_backbones.convert", fromlist=["x"]).from_torchvision("resnet999", {}),
        ValueError,
        "no conversion from torchvision model 'resnet999'",
    ),
    Case(
        "from-timm-unknown",
        "api",
        lambda f: __import__("vision_backbones.convert", fromlist=["x"]).from_timm("zzz", {}),
        ValueError,
        "no conversion from timm model 'zzz'",
    ),
    Case(
        "from-torchvision-unmapped",
        "api",
        lambda f: __import__("vision_backbones.convert", fromlist=["x"]).from_torchvision(
            "resnet18", {"weird.key": torch.zeros(1)}
        ),
        ValueError,
        "no rule maps keys weird.key",
    ),
    Case(
        "validate-overrides-depths-str",
        "c8",
        lambda f: _check_overrides(depths="2222"),
        ValueError,
        "depths='2222' for model 'resnet18': expected tuple[int, ...]",
    ),
    Case(
        "validate-overrides-rate-str",
        "c8",
        lambda f: _check_overrides(drop_path_rate="0.1"),
        ValueError,
        "drop_path_rate='0.1' for model 'resnet18': expected float",
    ),
    Case(
        "validate-overrides-float-channels",
        "c8",
        lambda f: _check_overrides(stem_channels=1.5),
        ValueError,
        "stem_channels=1.5",
    ),
    Case(
        "validate-overrides-bool-channels",
        "c8",
        lambda f: _check_overrides(stem_channels=True),
        ValueError,
        "stem_channels=True",
    ),
    # create_model checks every override against the config's annotations (issue 16: wrong types accepted silently)
    Case(
        "depths-str",
        "c8",
        _model(depths="2222"),
        ValueError,
        "depths='2222' for model 'resnet18': expected tuple[int, ...]",
    ),
    Case(
        "drop-path-str",
        "c8",
        _model(drop_path_rate="0.1"),
        ValueError,
        "drop_path_rate='0.1' for model 'resnet18': expected float",
    ),
    Case(
        "depths-bool-item",
        "c8",
        _model(depths=(True, 2, 2, 2)),
        ValueError,
        "depths=(True, 2, 2, 2) for model 'resnet18': expected tuple[int, ...]",
    ),
    Case(
        "depths-float-item",
        "c8",
        _model(depths=(2, 2, 2, 2.0)),
        ValueError,
        "depths=(2, 2, 2, 2.0) for model 'resnet18': expected tuple[int, ...]",
    ),
    Case(
        "depths-list-float",
        "c8",
        _model(depths=[2, 2, 2, 2.5]),
        ValueError,
        "depths=(2, 2, 2, 2.5) for model 'resnet18'",
    ),
    Case(
        "widths-float",
        "c8",
        _model(widths=(64.0, 128, 256, 512)),
        ValueError,
        "widths=(64.0, 128, 256, 512) for model 'resnet18': expected tuple[int, ...]",
    ),
    Case(
        "stem-channels-float",
        "c8",
        _model(stem_channels=64.0),
        ValueError,
        "stem_channels=64.0 for model 'resnet18': expected int",
    ),
    Case(
        "stem-channels-bool",
        "c8",
        _model(stem_channels=True),
        ValueError,
        "stem_channels=True for model 'resnet18': expected int",
    ),
    Case(
        "zero-init-str",
        "c8",
        _model(zero_init_residual="yes"),
        ValueError,
        "zero_init_residual='yes' for model 'resnet18': expected bool",
    ),
    Case(
        "zero-init-int",
        "c8",
        _model(zero_init_residual=1),
        ValueError,
        "zero_init_residual=1 for model 'resnet18': expected bool",
    ),
    Case(
        "block-literal",
        "c8",
        _model(block="bottle"),
        ValueError,
        "block='bottle' for model 'resnet18': expected one of 'basic', 'bottleneck'",
    ),
    Case(
        "drop-rate-str",
        "c8",
        _model(drop_rate="0.2"),
        ValueError,
        "drop_rate='0.2' for model 'resnet18': expected float",
    ),
    Case(
        "drop-rate-bool",
        "c8",
        _model(drop_rate=True),
        ValueError,
        "drop_rate=True for model 'resnet18': expected float",
    ),
    Case("drop-rate-one", "api", _model(drop_rate=1.0), ValueError, "drop_rate must be in [0, 1), got 1.0"),
    Case(
        "vovnet-ese-str", "c8", _model("vovnet39", ese="no"), ValueError, "ese='no' for model 'vovnet39': expected bool"
    ),
    Case(
        "vovnet-widths-str",
        "c8",
        _model("vovnet39", widths="256"),
        ValueError,
        "widths='256' for model 'vovnet39': expected tuple[int, ...]",
    ),
    Case(
        "vovnet-old-name",
        "api",
        _model("vovnet39", out_channels=(256, 512, 768, 1024)),
        ValueError,
        "unknown override 'out_channels'",
    ),
    Case(
        "mobilenet-v1-relu6-str",
        "c8",
        _model("mobilenet_v1", relu6="false"),
        ValueError,
        "relu6='false' for model 'mobilenet_v1': expected bool",
    ),
    Case(
        "inception-v3-aux-str",
        "c8",
        _model("inception_v3", aux_logits="yes"),
        ValueError,
        "aux_logits='yes' for model 'inception_v3': expected bool",
    ),
    Case(
        "googlenet-widths-float",
        "c8",
        _model("googlenet", stem_channels=(64, 64, 192.0)),
        ValueError,
        "stem_channels=(64, 64, 192.0) for model 'googlenet': expected tuple[int, int, int]",
    ),
    Case(
        "senet-se-ratio-str",
        "c8",
        _model("seresnet50", se_ratio="1/16"),
        ValueError,
        "se_ratio='1/16' for model 'seresnet50': expected float",
    ),
    Case(
        "shufflenet-widths-float",
        "c8",
        _model("shufflenet_v2_x1_0", widths=(116.0, 232, 464)),
        ValueError,
        "widths=(116.0, 232, 464) for model 'shufflenet_v2_x1_0'",
    ),
    Case(
        "nasnet-stem-float",
        "c8",
        _model("nasnet_a_mobile", stem_channels=32.0),
        ValueError,
        "stem_channels=32.0 for model 'nasnet_a_mobile': expected int",
    ),
    Case(
        "mbconv-row-kernel-float",
        "c8",
        _model("efficientnet_b0", rows=((1, 3.0, 1, 16),)),
        ValueError,
        "rows[0].kernel_size=3.0 for model 'efficientnet_b0': expected int",
    ),
    Case(
        "mbconv-row-stride-bool",
        "c8",
        _model("mobilenet_v2", rows=[{"expand_ratio": 1, "kernel_size": 3, "stride": True, "out_channels": 16}]),
        ValueError,
        "rows[0].stride=True for model 'mobilenet_v2': expected int",
    ),
    Case(
        "mbconv-row-activation-int",
        "c8",
        _model("mobilenet_v3_small", rows=((1, 3, 2, 16, 1, 0.25, 3),)),
        ValueError,
        "rows[0].activation=3 for model 'mobilenet_v3_small': expected str",
    ),
    Case(
        "mbconv-width-mult-str",
        "c8",
        _model("mobilenet_v2", width_multiplier="0.5"),
        ValueError,
        "width_multiplier='0.5' for model 'mobilenet_v2': expected float",
    ),
    Case(
        "zoph-le-filters-float",
        "c8",
        _model("zoph_le_plain8", layers=((36.0,),)),
        ValueError,
        "layers[0].filters=36.0 for model 'zoph_le_plain8': expected int",
    ),
    Case(
        "nasnet-cell-op-int",
        "c8",
        _model("nasnet_a_mobile", normal_cell=((((1, 0), (2, 0)),), (1,), False)),
        ValueError,
        "normal_cell.blocks[0][0].op=1 for model 'nasnet_a_mobile': expected str",
    ),
    Case("features-only-str", "c8", _model(features_only="no"), ValueError, "features_only"),
    Case("norm-eval-str", "c8", _model(norm_eval="yes"), ValueError, "norm_eval"),
    Case("out-indices-bool", "c8", _model(features_only=True, out_indices=(True,)), ValueError, "out_indices"),
    Case("hidden-channels-zero", "c8", _model("mobilenet_v3_small", hidden_channels=0), ValueError, "hidden_channels"),
    Case(
        "head-expand-ratio-zero",
        "c8",
        _model("mobilenet_v3_small", head_expand_ratio=0),
        ValueError,
        "head_expand_ratio",
    ),
    Case("input-fp16", "c8", _forward(lambda: torch.zeros(1, 3, 64, 64, dtype=torch.float16)), ValueError, "dtype"),
    Case("input-fp64", "c8", _forward(lambda: torch.zeros(1, 3, 64, 64, dtype=torch.float64)), ValueError, "dtype"),
]


def _check_overrides(**overrides: Any) -> None:
    from vision_backbones.registry import get_entry
    from vision_backbones.validate import check_overrides

    check_overrides("resnet18", get_entry("resnet18").config, overrides)


WEIGHTS = [
    Case("missing-file", "c4", _load("nope.safetensors"), ValueError, "nope.safetensors' does not exist"),
    Case("folder", "c4", _load("folder.safetensors"), ValueError, "is a folder"),
    Case("empty", "c4", _load("empty.safetensors"), ValueError, "empty.safetensors': the file is empty (0 bytes)"),
    Case("truncated", "c4", _load("truncated.safetensors"), ValueError, "cannot read '"),
    Case("truncated-names-file", "c4", _load("truncated.safetensors"), ValueError, "truncated.safetensors"),
    Case("header-only", "c4", _load("header_only.safetensors"), ValueError, "header_only.safetensors' as safetensors"),
    Case("garbage", "c4", _load("garbage.safetensors"), ValueError, "garbage.safetensors' as safetensors"),
    Case("huge-header", "c4", _load("huge_header.safetensors"), ValueError, "huge_header.safetensors' as safetensors"),
    Case(
        "bad-json",
        "c4",
        _load("bad_json.safetensors"),
        ValueError,
        "metadata 'vision_backbones.overrides' is not valid JSON",
    ),
    Case("list-json", "c4", _load("list_json.safetensors"), ValueError, "must be a JSON object, got list"),
    Case("string-json", "c4", _load("string_json.safetensors"), ValueError, "must be a JSON object, got str"),
    Case(
        "read-bad-json", "c4", lambda f: read_checkpoint(f / "bad_json.safetensors"), ValueError, "bad_json.safetensors"
    ),
    Case(
        "read-empty-pth", "c4", lambda f: read_checkpoint(f / "empty.pth"), ValueError, "empty.pth': the file is empty"
    ),
    Case(
        "read-garbage-pth",
        "c4",
        lambda f: read_checkpoint(f / "garbage.pth"),
        ValueError,
        "garbage.pth' as plain tensors",
    ),
    Case(
        "read-list-pth",
        "weights",
        lambda f: read_checkpoint(f / "list.pth"),
        ValueError,
        "holds no state dict of tensors",
    ),
    Case(
        "read-not-tensors",
        "weights",
        lambda f: read_checkpoint(f / "not_tensors.pth"),
        ValueError,
        "holds no state dict of tensors",
    ),
    Case("permission", "c4", lambda f: _unreadable(f / "good.safetensors"), ValueError, "permission denied"),
    Case(
        "int-checkpoint",
        "c3",
        _load("ints.safetensors"),
        ValueError,
        "has dtype torch.int64; expected floating-point weights",
    ),
    Case("int-checkpoint-names-key", "c3", _load("ints.safetensors"), ValueError, "stages.0.conv.weight"),
    Case("int-checkpoint-names-file", "c3", _load("ints.safetensors"), ValueError, "ints.safetensors"),
    Case(
        "int32-pth",
        "c3",
        lambda f: create_model("resnet18", pretrained=f / "ints.pth", **TINY),
        ValueError,
        "torch.int32",
    ),
    Case("bool-checkpoint", "c3", _load("bool.safetensors"), ValueError, "torch.bool"),
    Case(
        "nan",
        "c3",
        _load("nan.safetensors"),
        ValueError,
        "stages.0.conv.weight has 147 NaN/inf values; expected finite weights",
    ),
    Case(
        "inf-head",
        "c3",
        _load("inf_head.safetensors", num_classes=10),
        ValueError,
        "head.fc.bias has 10 NaN/inf values",
    ),
    Case(
        "complex",
        "c3",
        lambda f: create_model("resnet18", pretrained=f / "complex.pth", **TINY),
        ValueError,
        "is complex",
    ),
    Case(
        "float-counter",
        "c3",
        _load("float_counter.safetensors"),
        ValueError,
        "num_batches_tracked has dtype torch.float32; expected torch.int64",
    ),
    Case(
        "save-complex",
        "c3",
        lambda f: save_weights({"x": torch.zeros(2, dtype=torch.complex64)}, f / "c.safetensors"),
        ValueError,
        "cannot store 'x' of dtype torch.complex64",
    ),
    Case(
        "save-wrong-suffix",
        "weights",
        lambda f: save_weights({}, f / "w.pt"),
        ValueError,
        "expected a .safetensors output path",
    ),
    Case(
        "misshaped",
        "weights",
        _load("misshaped.safetensors"),
        ValueError,
        "mis-shaped keys: stages.0.conv.weight (checkpoint (5, 3, 7, 7)",
    ),
    Case("unexpected", "weights", _load("unexpected.safetensors"), ValueError, "unexpected keys: stages.9.weight"),
    Case("missing-keys", "weights", _load("missing.safetensors"), ValueError, "missing keys: stages.4"),
    Case(
        "conflicting-overrides",
        "weights",
        _load("good.safetensors", stem_channels=16),
        ValueError,
        "conflict with the architecture stored in",
    ),
    Case("other-architecture", "weights", _load("other_arch.safetensors"), ValueError, "mis-shaped keys"),
    Case("pickle-refused", "weights", lambda f: _pickle(f), ValueError, "weights_only=True"),
]


def _unreadable(path: Path) -> None:
    """A file without read permission (simulated for root, who may read anything)."""
    if os.geteuid() != 0:
        os.chmod(path, 0)
        try:
            read_checkpoint(path)
        finally:
            os.chmod(path, 0o644)
    real = os.access
    try:
        os.access = lambda p, mode, **kw: False if Path(p) == path else real(p, mode, **kw)  # type: ignore[assignment]
        read_checkpoint(path)
    finally:
        os.access = real  # type: ignore[assignment]


def _pickle(folder: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    import pickle

    path = folder / "evil.pth"
    path.write_bytes(pickle.dumps({"x": Payload()}))
    read_checkpoint(path)


def _cli(*argv: str, code: int, message: str, group: str = "cli", blocked: str = "") -> tuple:
    return list(argv), code, message, group, blocked


CLI = [
    # (argv, exit code, message, group)
    _cli("list", "zzz", code=2, message="no model matches 'zzz'", group="c9"),
    _cli("table", "--image-size", "-5", code=2, message="--image-size: expected an int >= 1, got -5", group="c9"),
    _cli("table", "--image-size", "0", code=2, message="expected an int >= 1, got 0", group="c9"),
    _cli("table", "--image-size", "abc", code=2, message="got 'abc'"),
    _cli("table", "zzz", code=2, message="no model matches 'zzz'"),
    _cli("nosuchcommand", code=2, message="invalid choice: 'nosuchcommand'"),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/tv_resnet18.pth",
        "{f}/exists.safetensors",
        code=2,
        message="exists; pass --force to overwrite it",
        group="c9",
    ),
    _cli(
        "convert",
        "--source",
        "caffe",
        "resnet18",
        "{f}/tv_resnet18.pth",
        "{f}/o.safetensors",
        code=2,
        message="invalid choice: 'caffe'",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet999",
        "{f}/tv_resnet18.pth",
        "{f}/o.safetensors",
        code=2,
        message="no conversion from torchvision model 'resnet999'",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/nope.pth",
        "{f}/o.safetensors",
        code=2,
        message="nope.pth' does not exist",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/garbage.safetensors",
        "{f}/o.safetensors",
        code=2,
        message="garbage.safetensors' as safetensors",
        group="c4",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/empty.safetensors",
        "{f}/o.safetensors",
        code=2,
        message="the file is empty",
        group="c4",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/truncated.safetensors",
        "{f}/o.safetensors",
        code=2,
        message="truncated.safetensors",
        group="c4",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/garbage.pth",
        "{f}/o.safetensors",
        code=2,
        message="garbage.pth' as plain tensors",
        group="c4",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/tv_resnet18.pth",
        "{f}/o.pt",
        code=2,
        message="expected a .safetensors output path",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/tv_resnet18.pth",
        "{f}/folder.safetensors",
        code=2,
        message="is a folder",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/tv_resnet18.pth",
        "{f}/a_file/o.safetensors",
        code=1,
        message="a_file",
        group="c9",
    ),
    _cli(
        "convert",
        "--source",
        "torchvision",
        "resnet18",
        "{f}/good.safetensors",
        "{f}/o.safetensors",
        code=2,
        message="no rule maps keys",
    ),
    _cli("convert", "--source", "torchvision", "resnet18", code=2, message="the following arguments are required"),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--image-size",
        "0",
        code=2,
        message="--image-size: expected an int >= 1, got 0",
        group="c9",
    ),
    _cli("export", "resnet18", "{f}/x.onnx", "--image-size", "-3", code=2, message="got -3", group="c9"),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--image-size",
        "8",
        code=2,
        message="image_size 8 is smaller than this network takes",
    ),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--num-classes",
        "0",
        code=2,
        message="--num-classes: expected an int >= 1, got 0",
    ),
    _cli("export", "resnet18", "{f}/exists.onnx", code=2, message="exists; pass --force to overwrite it", group="c9"),
    _cli("export", "resnet18", "{f}/x.onnx", "--format", "tflite", code=2, message="invalid choice: 'tflite'"),
    _cli("export", "zzz", "{f}/x.onnx", code=2, message="unknown model 'zzz'"),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--pretrained",
        "{f}/empty.safetensors",
        code=2,
        message="the file is empty",
        group="c4",
    ),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--pretrained",
        "{f}/garbage.safetensors",
        code=2,
        message="garbage.safetensors' as safetensors",
        group="c4",
    ),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--pretrained",
        "{f}/nan.safetensors",
        code=2,
        message="NaN/inf values",
        group="c3",
    ),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--pretrained",
        "{f}/ints.safetensors",
        code=2,
        message="expected floating-point weights",
        group="c3",
    ),
    _cli(
        "export",
        "resnet18",
        "{f}/x.onnx",
        "--pretrained",
        "{f}/list_json.safetensors",
        code=2,
        message="must be a JSON object",
        group="c4",
    ),
    _cli("export-backbone", "{f}/nope.ckpt", "{f}/o.safetensors", code=2, message="nope.ckpt' does not exist"),
    _cli(
        "export-backbone",
        "{f}/garbage.ckpt",
        "{f}/o.safetensors",
        code=2,
        message="garbage.ckpt' as a training checkpoint",
    ),
    _cli("export-backbone", "{f}/list.ckpt", "{f}/o.safetensors", code=2, message="is not a training checkpoint"),
    _cli(
        "export-backbone",
        "{f}/not_training.ckpt",
        "{f}/o.safetensors",
        code=2,
        message="is not a vision_backbones training checkpoint",
    ),
    _cli(
        "export-backbone",
        "{f}/no_ema.ckpt",
        "{f}/o.safetensors",
        "--weights",
        "ema",
        code=2,
        message="the checkpoint has no EMA weights",
    ),
    _cli(
        "export-backbone",
        "{f}/no_ema.ckpt",
        "{f}/exists.safetensors",
        code=2,
        message="exists; pass --force to overwrite it",
        group="c9",
    ),
    _cli("export-backbone", "{f}/no_ema.ckpt", "{f}/o.pt", code=2, message="expected a .safetensors output path"),
    _cli(
        "export-backbone",
        "{f}/no_ema.ckpt",
        "{f}/o.safetensors",
        "--weights",
        "best",
        code=2,
        message="invalid choice: 'best'",
    ),
    _cli(
        "data",
        "shard",
        "--root",
        "{f}/images",
        "--out",
        "{f}/s0",
        "--max-count",
        "0",
        code=2,
        message="--max-count: expected an int >= 1, got 0",
        group="c9",
    ),
    _cli(
        "data",
        "shard",
        "--root",
        "{f}/images",
        "--out",
        "{f}/s1",
        "--max-count",
        "-5",
        code=2,
        message="got -5",
        group="c9",
    ),
    _cli("data", "shard", "--root", "{f}/images", "--out", "{f}/s2", "--max-count", "x", code=2, message="got 'x'"),
    _cli(
        "data",
        "shard",
        "--root",
        "{f}/images",
        "--out",
        "{f}/shards",
        "--splits",
        "train",
        code=2,
        message="train-000000.tar' exists",
        group="c9",
    ),
    _cli("data", "shard", "--root", "{f}/nope", "--out", "{f}/s3", code=2, message="image folder"),
    _cli(
        "data", "shard", "--root", "{f}/images", "--out", "{f}/s4", "--splits", "test", code=2, message="does not exist"
    ),
    _cli(
        "data",
        "prepare-imagenet",
        "--val-solution",
        "{f}/nope.csv",
        "--val-dir",
        "{f}/val",
        code=2,
        message="nope.csv' does not exist",
    ),
    _cli(
        "data",
        "prepare-imagenet",
        "--val-solution",
        "{f}/bad.csv",
        "--val-dir",
        "{f}/val",
        code=2,
        message="expected the header",
    ),
    _cli(
        "data",
        "prepare-imagenet",
        "--val-solution",
        "{f}/short_row.csv",
        "--val-dir",
        "{f}/val",
        code=2,
        message="expected 2 columns",
    ),
    _cli(
        "data",
        "prepare-imagenet",
        "--val-solution",
        "{f}/bad_wnid.csv",
        "--val-dir",
        "{f}/val",
        code=2,
        message="is not a WordNet id",
    ),
    _cli(
        "data",
        "prepare-imagenet",
        "--val-solution",
        "{f}/bad.csv",
        code=2,
        message="the following arguments are required: --val-dir",
    ),
    _cli("data", "frobnicate", code=2, message="invalid choice"),
]


def _transform(**kwargs: Any) -> Callable[[Path], Any]:
    def run(folder: Path) -> Any:
        from vision_backbones.train.datamodule import ImageDataModule

        return ImageDataModule(str(folder / "images"), **{"num_workers": 0, **kwargs})

    return run


def _classifier(**kwargs: Any) -> Callable[[Path], Any]:
    def run(folder: Path) -> Any:
        from vision_backbones.train.module import ImageClassifier

        return ImageClassifier(**{"model": "resnet18", "num_classes": 3, "model_overrides": dict(TINY), **kwargs})

    return run


DATA = [
    Case(
        "crop-size-zero",
        "c1",
        _transform(train_crop_size=0),
        ValueError,
        "data.train_crop_size must be an int >= 1, got 0",
    ),
    Case("crop-size-negative", "c1", _transform(train_crop_size=-8), ValueError, "got -8"),
    Case("crop-size-float", "c1", _transform(train_crop_size=3.5), ValueError, "got 3.5"),
    Case(
        "crop-scale-reversed",
        "c1",
        _transform(train_crop_scale=(1.0, 0.1)),
        ValueError,
        "data.train_crop_scale must be (low, high) with 0 < low <= high <= 1, got [1.0, 0.1]",
    ),
    Case("crop-scale-zero", "c1", _transform(train_crop_scale=(0.0, 1.0)), ValueError, "data.train_crop_scale"),
    Case("crop-scale-over-one", "c1", _transform(train_crop_scale=(0.5, 1.5)), ValueError, "data.train_crop_scale"),
    Case("crop-scale-one-value", "c1", _transform(train_crop_scale=(0.5,)), ValueError, "data.train_crop_scale"),
    Case("crop-scale-negative", "c1", _transform(train_crop_scale=(-0.5, 1.0)), ValueError, "data.train_crop_scale"),
    Case(
        "val-crop-above-resize",
        "c6",
        _transform(val_crop_size=64, val_resize_size=32),
        ValueError,
        "data.val_crop_size 64 must be <= data.val_resize_size 32",
    ),
    Case(
        "val-crop-zero", "c6", _transform(val_crop_size=0), ValueError, "data.val_crop_size must be an int >= 1, got 0"
    ),
    Case(
        "val-resize-zero",
        "c6",
        _transform(val_resize_size=0, val_crop_size=1),
        ValueError,
        "data.val_resize_size must be an int >= 1, got 0",
    ),
    Case("batch-size-zero", "c6", _transform(batch_size=0), ValueError, "data.batch_size must be an int >= 1, got 0"),
    Case(
        "batch-size-float", "c6", _transform(batch_size=2.5), ValueError, "data.batch_size must be an int >= 1, got 2.5"
    ),
    Case(
        "num-workers-negative",
        "c6",
        _transform(num_workers=-1),
        ValueError,
        "data.num_workers must be an int >= 0, got -1",
    ),
    Case(
        "hflip-prob",
        "c6",
        _transform(hflip_prob=1.5),
        ValueError,
        "data.hflip_prob must be a finite number in [0, 1], got 1.5",
    ),
    Case("erase-prob", "c6", _transform(random_erase_prob=-0.1), ValueError, "data.random_erase_prob"),
    Case("auto-augment", "c6", _transform(auto_augment="autoaugment"), ValueError, "auto_augment must be"),
    Case("interpolation", "c6", _transform(interpolation="lanczos"), ValueError, "data.interpolation must be one of"),
    Case(
        "std-negative",
        "c6",
        _transform(std=(0.2, -0.2, 0.2)),
        ValueError,
        "data.std must be a finite number >= 0, got -0.2",
    ),
    Case("mean-two", "c6", _transform(mean=(0.5, 0.5)), ValueError, "data.mean"),
    Case("shuffle-buffer", "c6", _transform(shuffle_buffer=-1), ValueError, "data.shuffle_buffer"),
    Case("root-missing", "c6", lambda f: _transform()(f / "nope"), ValueError, "does not exist"),
    Case(
        "no-root-no-shards",
        "data",
        lambda f: __import__("vision_backbones.train.datamodule", fromlist=["x"]).ImageDataModule(None),
        ValueError,
        "give root (class folders) or both train_shards and val_shards",
    ),
    Case(
        "num-classes-zero", "c6", _transform(num_classes=0), ValueError, "data.num_classes must be an int >= 1, got 0"
    ),
    Case(
        "model-ema-every-zero",
        "c6",
        _classifier(ema_every_n_steps=0),
        ValueError,
        "model.ema_every_n_steps must be an int >= 1, got 0",
    ),
    Case(
        "model-label-smoothing",
        "c6",
        _classifier(label_smoothing=2),
        ValueError,
        "model.label_smoothing must be a finite number in [0, 1), got 2",
    ),
    Case(
        "model-mixup-negative",
        "c6",
        _classifier(mixup_alpha=-1),
        ValueError,
        "model.mixup_alpha must be a finite number >= 0, got -1",
    ),
    Case("model-cutmix-negative", "c6", _classifier(cutmix_alpha=-0.5), ValueError, "model.cutmix_alpha"),
    Case(
        "model-warmup-negative",
        "c6",
        _classifier(warmup_epochs=-1),
        ValueError,
        "model.warmup_epochs must be a finite number >= 0, got -1",
    ),
    Case("model-lr-zero", "c6", _classifier(lr=0), ValueError, "model.lr must be a finite number > 0, got 0"),
    Case(
        "model-lr-nan", "c6", _classifier(lr=float("nan")), ValueError, "model.lr must be a finite number > 0, got nan"
    ),
    Case("model-momentum", "c6", _classifier(momentum=1.5), ValueError, "model.momentum"),
    Case("model-weight-decay", "c6", _classifier(weight_decay=-1e-4), ValueError, "model.weight_decay"),
    Case("model-ema-decay", "c6", _classifier(ema_decay=1.5), ValueError, "model.ema_decay"),
    Case("model-min-lr", "c6", _classifier(min_lr_factor=2), ValueError, "model.min_lr_factor"),
    Case("model-warmup-start", "c6", _classifier(warmup_start_factor=0), ValueError, "model.warmup_start_factor"),
    Case(
        "model-batch-size", "c6", _classifier(batch_size=0), ValueError, "model.batch_size must be an int >= 1, got 0"
    ),
    Case("model-reference-batch", "c6", _classifier(lr_reference_batch=0), ValueError, "model.lr_reference_batch"),
    Case("model-unknown", "c6", _classifier(model="resnet_99"), ValueError, "model.model: unknown model 'resnet_99'"),
    Case(
        "model-num-classes",
        "c6",
        _classifier(num_classes=0),
        ValueError,
        "model.num_classes must be an int >= 1, got 0",
    ),
    Case("model-frozen-stages", "c6", _classifier(frozen_stages=-5), ValueError, "model.frozen_stages"),
    Case("model-backbone-lr-scale", "c6", _classifier(backbone_lr_scale=-1), ValueError, "model.backbone_lr_scale"),
    Case(
        "model-channels-last-str",
        "c6",
        _classifier(channels_last="yes"),
        ValueError,
        "model.channels_last must be True or False",
    ),
    Case(
        "model-nesterov-no-momentum",
        "c6",
        _classifier(nesterov=True, momentum=0.0),
        ValueError,
        "model.nesterov needs model.momentum > 0",
    ),
    Case(
        "model-overrides-list",
        "c6",
        _classifier(model_overrides=[1]),
        ValueError,
        "model.model_overrides must be a mapping",
    ),
    Case(
        "model-overrides-unknown",
        "c6",
        _classifier(model_overrides={"widht": 2}),
        ValueError,
        "unknown override 'widht'",
    ),
]

# training CLI lines (each builds the Lightning CLI: about a second; the config errors of class 6)
TRAIN = [
    (["--data.batch_size", "0"], "data.batch_size must be an int >= 1, got 0"),
    (["--data.root", "/nonexistent"], "/nonexistent/train' does not exist"),
    (["--model.model", "zzz"], "unknown model 'zzz'"),
    (["--model.ema_every_n_steps", "0"], "model.ema_every_n_steps must be an int >= 1, got 0"),
    (["--model.label_smoothing", "2"], "model.label_smoothing"),
    (
        ["--data.val_crop_size", "64", "--data.val_resize_size", "32"],
        "data.val_crop_size 64 must be <= data.val_resize_size 32",
    ),
    (["--model.mixup_alpha", "-1"], "model.mixup_alpha"),
    (["--model.warmup_epochs", "-1"], "model.warmup_epochs"),
    (["--data.train_crop_size", "0"], "data.train_crop_size"),
    (["--data.train_crop_scale", "[1.0, 0.1]"], "data.train_crop_scale"),
    (["--model.lr", "fast"], "model.lr"),
    (["--model.learning_rate", "0.1"], "learning_rate"),
]


def _all_cases() -> list[Case]:
    cases = list(API) + list(WEIGHTS) + list(DATA)
    for argv, code, message, group, blocked in CLI:
        cases.append(Case("cli:" + " ".join(a.replace("{f}/", "") for a in argv), group, argv, code, message, blocked))
    return cases


CASES = _all_cases()


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=f"needs {case.blocked}", strict=False)] if case.blocked else []
    return pytest.param(case, id=f"{case.group}-{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, files: Path, capsys) -> None:
    if isinstance(case.run, list):
        argv = [a.replace("{f}", str(files)) for a in case.run]
        try:
            code = cli_main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        captured = capsys.readouterr()
        assert code == case.expect, captured.err
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line, got {len(lines)}: {captured.err}"
        assert "Traceback" not in captured.err
        assert case.message in lines[0], lines[0]
        return
    with pytest.raises(case.expect) as info:
        case.run(files)
    text = str(info.value)
    assert "\n" not in text.strip(), f"not one line: {text}"
    assert case.message in text, text


@pytest.fixture(scope="module")
def train_config(files: Path, tmp_path_factory) -> Path:
    from test_train_cli import TINY_CONFIG

    out = tmp_path_factory.mktemp("train_bad")
    config = out / "tiny.yaml"
    config.write_text(TINY_CONFIG.format(root=files / "images", out=out / "run", epochs=1))
    return config


@pytest.mark.parametrize(("extra", "message"), TRAIN, ids=[" ".join(a) for a, _ in TRAIN])
def test_bad_training_config(extra: list[str], message: str, train_config: Path, capsys) -> None:
    pytest.importorskip("lightning")
    from vision_backbones.cli.train import main

    code = main(["fit", "--config", str(train_config), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("INFO", "WARNING"))]
    assert code == 2, err
    assert len(lines) == 1, err
    assert message in lines[0], lines[0]
    assert not (train_config.parent / "run" / "checkpoints").exists()


def test_registry_size() -> None:
    working = [c for c in CASES if not c.blocked]
    assert len(working) + len(TRAIN) >= 150
    groups = {c.group for c in CASES} | {"c6"}
    for number in (1, 3, 4, 6, 8, 9):
        assert f"c{number}" in groups
