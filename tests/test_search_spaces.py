"""Search spaces: members are override dicts that rebuild exactly what was evaluated; bad spaces fail at once."""

from __future__ import annotations

import random

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.registry import apply_overrides, get_entry
from vision_backbones.search.spaces import (
    SPACES,
    MBConvSpace,
    StageSpace,
    ZophLeSpace,
    from_json,
    get_space,
    load_architecture,
    save_architecture,
    to_json,
)

SEARCHED = ("mnasnet", "resnet", "zoph_le")


@pytest.mark.parametrize("name", SEARCHED)
def test_100_random_members_round_trip_through_json(name: str) -> None:
    """100 members per space: JSON and back gives the same config; a few are built and counted."""
    import json

    space = get_space(name)
    entry = get_entry(space.base)
    rng = random.Random(0)
    members = [space.random_indices(rng) for _ in range(100)]
    assert len({space.key(m) for m in members}) > 90  # the draws cover the space, not one corner
    for number, indices in enumerate(members):
        architecture = space.architecture(indices)
        loaded = from_json(json.loads(json.dumps(to_json(architecture))))
        assert apply_overrides(space.base, entry.config, loaded) == apply_overrides(
            space.base, entry.config, architecture
        )
        if number == 0:  # building is the slow part; benchmarks/search_roundtrip.py builds all 100
            evaluated = sum(p.numel() for p in space.build(architecture).parameters())
            rebuilt = create_model(space.base, num_classes=10, in_channels=1, **loaded)
            assert sum(p.numel() for p in rebuilt.parameters()) == evaluated


@pytest.mark.parametrize("name", SEARCHED)
def test_a_member_passes_the_feature_contract(name: str, tmp_path) -> None:
    """(ONNX export of the MBConv and ResNet families is tested by test_deploy; the new family's is here.)"""
    from vision_backbones.deploy.formats import FeaturesWrapper, check_onnx, onnx_bytes

    space = get_space(name)
    indices = space.random_indices(random.Random(1))
    path = save_architecture(tmp_path / "arch.json", space.base, space.architecture(indices))
    base, overrides = load_architecture(path)
    model = create_model(base, features_only=True, **overrides).eval()
    x = torch.randn(1, 3, 64, 64)
    maps = model(x)
    assert [m.shape[1] for m in maps] == list(model.out_channels)
    assert [64 // m.shape[-1] for m in maps] == [min(s, 64) for s in model.strides]
    if name == "zoph_le":
        wrapper = FeaturesWrapper(model)
        check_onnx(onnx_bytes(wrapper, x), wrapper, [x])


def test_mnasnet_space_has_the_factorized_choices() -> None:
    space = get_space("mnasnet")
    by_name = {d.name: d.choices for d in space.decisions}
    assert by_name["rows[1].kernel_size"] == (3, 5, 7)
    assert by_name["rows[1].expand_ratio"] == (1, 3, 6)
    assert by_name["rows[1].se_ratio"] == (0.0, 0.25)
    assert by_name["rows[1].repeats"] == (2, 3, 4)  # B1's 3 blocks -1 / 0 / +1
    assert by_name["rows[0].repeats"] == (1, 2)  # a single block cannot drop to 0
    indices = [len(d.choices) - 1 for d in space.decisions]
    rows = space.architecture(indices)["rows"]
    assert rows[1]["kernel_size"] == 7 and rows[1]["se_ratio"] == 0.25 and rows[1]["out_channels"] == 30  # 24 x 1.25


def test_zoph_le_space_grows_and_resizes_by_length() -> None:
    space = get_space("zoph_le")
    deeper = space.with_depth(8)
    assert len(deeper.decisions) == ZophLeSpace.decision_count(8) == 4 * 8 + 21
    indices = deeper.random_indices(random.Random(0))
    assert len(space.architecture(indices)["layers"]) == 8  # the length says the depth
    all_strided = [1 if d.kind == "stride" else 0 for d in space.decisions]
    strides = [layer["stride"] for layer in space.architecture(all_strided)["layers"]]
    assert strides == [2, 2, 2, 1, 1, 1]  # past max_reductions=3 a stride-2 choice is taken as 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MBConvSpace("bad", "mnasnet1_0", kernels=(3, 4)), "kernel_size must be odd"),
        (
            lambda: StageSpace("bad", "resnet18", depth_choices=((0, 1),) * 4, width_choices=((8,),) * 4),
            r"depths .*>= 1",
        ),
        (lambda: StageSpace("bad", "resnet18", image_size=16), "needs inputs >= 32"),
        (lambda: ZophLeSpace("bad", "zoph_le_plain8", strides=(1, 3)), "strides"),
        (lambda: StageSpace("bad", "no_such_model"), "unknown model"),
        (lambda: get_space("nasnet"), "unknown space 'nasnet'"),
    ],
)
def test_invalid_spaces_are_rejected_when_defined(build, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_members_are_checked() -> None:
    space = get_space("nasbench_resnet")
    assert space.size == 256 == len(space.all_indices()) == len({space.key(m) for m in space.all_indices()})
    with pytest.raises(ValueError, match="takes 8 choices"):
        space.architecture([0, 1])
    with pytest.raises(ValueError, match=r"out of range; expected 0..1"):
        space.architecture([0, 0, 0, 0, 0, 0, 0, 2])
    assert set(SPACES) >= set(SEARCHED)


def test_bad_architecture_files_are_one_line(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_architecture(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_architecture(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected an object with 'model'"):
        load_architecture(tmp_path / "list.json")
