"""Weight files: safe, strict, atomic; conversions survive a safetensors round trip."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import leftover_temp_files

from vision_backbones import create_model, save_weights
from vision_backbones.cli import main as cli_main


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=10).eval()
    path = save_weights(model.state_dict(), tmp_path / "r18.safetensors", model_name="resnet18")
    loaded = create_model("resnet18", num_classes=10, pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))
    assert leftover_temp_files(tmp_path) == [], "temporary files left behind"


def test_features_only_drops_head_and_new_num_classes_keeps_fresh_head(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=10)
    path = save_weights(model.state_dict(), tmp_path / "r18.safetensors")
    backbone = create_model("resnet18", features_only=True, pretrained=path)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    loaded = backbone.state_dict()
    assert loaded.keys() == body.keys() and all(torch.equal(loaded[k], body[k]) for k in body)
    other = create_model("resnet18", num_classes=3, pretrained=path)
    assert other.head.fc.out_features == 3


def test_mismatched_checkpoint_names_every_key_and_leaves_model_untouched(tmp_path: Path) -> None:
    state = create_model("resnet18").state_dict()
    first, second = list(state)[:2]
    del state[first]
    state["extra.weight"] = torch.zeros(1)
    state[second] = torch.zeros(3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    model = create_model("resnet18")
    before = _state(model)
    with pytest.raises(ValueError) as error:
        from vision_backbones.weights import load_pretrained, read_checkpoint

        load_pretrained(model, read_checkpoint(path)[0], source=str(path))
    text = str(error.value)
    assert (
        f"missing keys: {first}" in text
        and "unexpected keys: extra.weight" in text
        and f"mis-shaped keys: {second}" in text
    )
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Exploit:
    def __reduce__(self):  # what an attacker's pickle would run on load
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv.weight": _Exploit()}, handle)
    with pytest.raises(ValueError, match="weights_only=True"):
        create_model("resnet18", pretrained=path)


def test_cli_convert_torchvision_checkpoint(tmp_path: Path) -> None:
    import torchvision
    from conftest import randomize_norm_stats

    reference = randomize_norm_stats(torchvision.models.resnet18()).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    out = tmp_path / "resnet18.safetensors"
    assert cli_main(["convert", "--source", "torchvision", "resnet18", str(tmp_path / "resnet18.pth"), str(out)]) == 0
    ours = create_model("resnet18", pretrained=out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() <= 1e-4


def test_cli_convert_stores_architecture_overrides(tmp_path: Path) -> None:
    """A reference that needs config overrides records them; create_model applies them on load."""
    from vision_backbones.convert import list_references

    with_overrides = [r for r in list_references("timm") if r.overrides]
    if not with_overrides:
        pytest.skip("no registered reference needs overrides")
    reference_spec = with_overrides[0]
    import timm
    from conftest import randomize_norm_stats

    reference = randomize_norm_stats(timm.create_model(reference_spec.name, pretrained=False)).eval()
    torch.save(reference.state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "ref.safetensors"
    assert cli_main(["convert", "--source", "timm", reference_spec.name, str(tmp_path / "ref.pth"), str(out)]) == 0
    ours = create_model(reference_spec.model, pretrained=out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() <= 1e-4
