"""One vocabulary across families (issue 15): shared config fields, typed overrides, renamed fields.

Every family takes ``drop_rate`` (dropout before the classifier); families with residual branches take
``drop_path_rate``; checkpoints whose metadata stores a field under its old name still load.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch
from registry_cases import MODEL_CASES
from torch import nn

from vision_backbones import create_model, list_models
from vision_backbones.backbone import Backbone
from vision_backbones.registry import build_on_meta, get_entry
from vision_backbones.weights import RENAMED_FIELDS, save_weights

# Families without a residual branch to drop: plain chains, concatenations (DenseNet, ShuffleNet v2's
# split-and-concat units, Zoph & Le's skip concatenations) and Inception modules.
NO_RESIDUAL = {
    "alexnet",
    "vgg",
    "densenet",
    "googlenet",
    "bninception",
    "inception_v3",
    "inception_v4",
    "shufflenet_v2",
    "zoph_le",
    "mobilenet_v1",
}
RETIRED = {"stage_channels", "stem_filters", "penultimate_filters", "final_channels", "se_reduction", "out_channels"}


def _families() -> dict[str, str]:
    """One small variant per family (vovnet19_slim has no residual block): variants share one builder."""
    first: dict[str, str] = {"vovnet": "vovnet39", "nasnet": "nasnet_a_mobile", "senet": "seresnet50"}
    for name in list_models():
        first.setdefault(get_entry(name).family, name)
    return first


def _no_stride_probe(self: Backbone) -> None:  # building on meta: the probe's two forwards are not needed
    self.level_channels, self.level_strides = (0,) * len(self.stages), (1,) * len(self.stages)
    self._min_input_size = self._min_input_size or 32


def _fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_entry(name).config)}


@pytest.mark.parametrize("name", MODEL_CASES)
def test_every_model_takes_drop_rate_into_its_classifier(name: str) -> None:
    with mock.patch.object(Backbone, "_measure", _no_stride_probe):
        model = build_on_meta(name, drop_rate=0.25)
    rates = [m.p for m in model.head.modules() if isinstance(m, nn.Dropout)]
    assert 0.25 in rates, f"{name}: head dropouts {rates}"


@pytest.mark.parametrize(("family", "name"), sorted(_families().items()))
def test_drop_path_rate_exactly_where_there_are_residual_branches(family: str, name: str) -> None:
    assert ("drop_path_rate" in _fields(name)) == (family not in NO_RESIDUAL)
    if family in NO_RESIDUAL:
        return
    with mock.patch.object(Backbone, "_measure", _no_stride_probe):
        plain = build_on_meta(name, features_only=True, drop_path_rate=0.0)
        dropped = build_on_meta(name, features_only=True, drop_path_rate=0.2)
    rates = [m.p for m in dropped.modules() if "DropPath" in type(m).__name__ and hasattr(m, "p")]
    assert rates and 0.15 < max(rates) <= 0.2, (
        f"{name}: stochastic-depth rates {rates}"
    )  # torchvision's MBConv: 0.2 * (n-1)/n
    assert not [m for m in plain.modules() if "DropPath" in type(m).__name__ and getattr(m, "p", 0.0) > 0]
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # no new weights: checkpoints still fit


def test_no_family_keeps_a_retired_field_name() -> None:
    for name in _families().values():
        assert not _fields(name) & RETIRED, f"{name}: {sorted(_fields(name) & RETIRED)}"


def test_every_rename_points_from_a_retired_name_to_a_field() -> None:
    families = _families()
    for family, renames in RENAMED_FIELDS.items():
        fields = _fields(families[family])
        for old, rule in renames.items():
            new = rule if isinstance(rule, str) else rule[0]
            assert old not in fields and new in fields, (family, old, new)


TINY_VOVNET = {"stem_channels": (8, 8, 16), "depths": (1, 1, 1, 1), "num_layers": 2}


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        (
            "vovnet39",
            {**TINY_VOVNET, "mid_channels": (8, 8, 8, 8), "out_channels": (16, 16, 24, 24)},
            {**TINY_VOVNET, "mid_widths": (8, 8, 8, 8), "widths": (16, 16, 24, 24)},
        ),
        (
            "shufflenet_v2_x1_0",
            {"stage_channels": (16, 32, 64), "depths": (1, 1, 1)},
            {"widths": (16, 32, 64), "depths": (1, 1, 1)},
        ),
        (
            "seresnet50",
            {"depths": (1, 1, 1, 1), "widths": (8, 8, 8, 8), "se_reduction": 8},
            {"depths": (1, 1, 1, 1), "widths": (8, 8, 8, 8), "se_ratio": 1 / 8},
        ),
    ],
    ids=["vovnet", "shufflenet_v2", "senet"],
)
def test_checkpoint_with_old_field_names_loads(tmp_path, name: str, old: dict, new: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **new).eval()
    path = save_weights(model.state_dict(), tmp_path / "old.safetensors", model_name=name, overrides=old)
    loaded = create_model(name, num_classes=3, pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match=f"unknown override '{next(k for k in old if k not in new)}'"):
        create_model(name, **old)  # the old names live on only in stored metadata


def test_old_and_new_name_in_one_checkpoint_is_refused(tmp_path) -> None:
    model = create_model("shufflenet_v2_x1_0", widths=(16, 32, 64), depths=(1, 1, 1))
    both = {"stage_channels": (16, 32, 64), "widths": (16, 32, 64), "depths": (1, 1, 1)}
    path = save_weights(model.state_dict(), tmp_path / "both.safetensors", overrides=both)
    with pytest.raises(ValueError, match="stores both 'stage_channels' and its new name 'widths'"):
        create_model("shufflenet_v2_x1_0", pretrained=path)


def test_se_ratio_keeps_the_paper_squeeze_width() -> None:
    model = build_on_meta("seresnet50", features_only=True)
    se = model.stages[1].blocks[0].se
    assert (se.reduce.in_channels, se.reduce.out_channels) == (256, 16)  # 256 / r with r = 16


def test_lists_from_yaml_become_tuples() -> None:
    from vision_backbones.registry import apply_overrides

    config = apply_overrides("resnet18", get_entry("resnet18").config, {"depths": [1, 1, 1, 1]})
    assert config.depths == (1, 1, 1, 1) and isinstance(config.depths, tuple)


# ---- preprocessing: each family declares what its weights expect; eval_transform builds it


@pytest.mark.parametrize(
    ("name", "overrides", "weights"),
    [
        ("resnet50", {}, "ResNet50_Weights"),
        ("inception_v3", {"transform_input": True}, "Inception_V3_Weights"),
        ("googlenet", {"transform_input": True}, "GoogLeNet_Weights"),
        ("efficientnet_b3", {}, "EfficientNet_B3_Weights"),
        ("convnext_tiny", {}, "ConvNeXt_Tiny_Weights"),
        ("shufflenet_v2_x2_0", {}, "ShuffleNet_V2_X2_0_Weights"),
    ],
)
def test_eval_transform_matches_torchvision_weights(name: str, overrides: dict, weights: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    from vision_backbones import eval_transform

    expected = getattr(torchvision.models, weights).IMAGENET1K_V1.transforms()
    model = build_on_meta(name, **overrides)
    steps = {type(t).__name__: t for t in eval_transform(model).transforms}
    assert steps["Resize"].size == expected.resize_size
    assert list(steps["CenterCrop"].size) == expected.crop_size * 2
    assert steps["Resize"].interpolation == expected.interpolation
    assert steps["Normalize"].mean == pytest.approx(expected.mean) and steps["Normalize"].std == pytest.approx(
        expected.std
    )


def test_inception_weights_without_transform_input_take_minus_one_one() -> None:
    from vision_backbones.family import INCEPTION_MEAN, INCEPTION_STD

    for name, size in (
        ("inception_v3", 299),
        ("inception_v4", 299),
        ("inception_resnet_v2", 299),
        ("xception", 299),
        ("nasnet_a_large", 331),
    ):
        preprocessing = get_entry(name).preprocessing
        assert (preprocessing.mean, preprocessing.std, preprocessing.input_size) == (
            INCEPTION_MEAN,
            INCEPTION_STD,
            size,
        ), name
    assert get_entry("nasnet_a_large").preprocessing.interpolation == "bicubic"


def test_eval_transform_runs_on_an_image_and_feeds_the_model() -> None:
    pytest.importorskip("torchvision")
    from vision_backbones import eval_transform

    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    x = eval_transform("resnet18")(image)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    with pytest.raises(ValueError, match="carries no preprocessing"):
        eval_transform(nn.Linear(2, 2))


def test_every_family_declares_preprocessing_in_its_own_file() -> None:
    import inspect

    for name in _families().values():
        source = inspect.getsource(inspect.getmodule(get_entry(name).build))
        assert "preprocessing=PREPROCESSING" in source, f"{get_entry(name).family} declares no preprocessing"
