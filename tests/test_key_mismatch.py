"""Key-mismatch errors fit on a screen (issue 16): counts, the first keys, a detected prefix with its fix.

A checkpoint whose keys do not fit once named every key (13 kB in one message; a Lightning
checkpoint 10.5 kB with no hint). The message now stays within ``MAX_MISMATCH_MESSAGE``
characters on one line; every key is in the error's ``details``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vision_backbones import create_model
from vision_backbones.weights import MAX_MISMATCH_MESSAGE, KeyMismatchError, check_state_dict, save_weights


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return create_model("resnet18", num_classes=10).state_dict()


def _error(state: dict[str, torch.Tensor], source: str = "/runs/exp/checkpoints/last.ckpt") -> KeyMismatchError:
    with pytest.raises(KeyMismatchError) as info:
        check_state_dict(create_model("resnet18", num_classes=10), state, source=source)
    text = str(info.value)
    assert len(text) <= MAX_MISMATCH_MESSAGE + 50 and "\n" not in text, f"{len(text)} characters: {text}"
    assert isinstance(info.value, ValueError)
    return info.value


def test_lightning_prefix_is_summarised_with_the_fix(state) -> None:
    error = _error({f"model.{k}": v for k, v in state.items()})
    text = str(error)
    assert "keys start with 'model.': a Lightning checkpoint; use `backbones export-backbone" in text
    assert "or strip the prefix" in text
    body = [k for k in state if not k.startswith("head.")]
    assert f"missing keys: {body[0]}, " in text and f", {len(body)} in all)" in text
    assert f", {len(state)} in all)" in text  # unexpected: every key, head included, behind the prefix
    assert error.missing == body and len(error.unexpected) == len(state)
    assert all(k in error.details for k in state) and all(f"model.{k}" in error.details for k in state)


def test_dataparallel_prefix_is_named(state) -> None:
    text = str(_error({f"module.{k}": v for k, v in state.items()}))
    assert "start with 'module.': saved from DataParallel / DistributedDataParallel; strip the prefix" in text


def test_random_extra_keys_are_counted_without_a_hint(state) -> None:
    extra = {f"aux.{i}.block{i % 7}.weight": torch.zeros(1) for i in range(400)}
    error = _error({**state, **extra})
    text = str(error)
    assert "unexpected keys: aux.0.block0.weight, aux.1.block1.weight" in text and ", 400 in all)" in text
    assert "start with" not in text, "no prefix hint for keys that are not the model's"
    assert "missing keys" not in text and len(error.unexpected) == 400
    assert len(error.details.splitlines()) == 400 + 2  # the head line, the kind's line, one line per key


def test_every_kind_at_once_still_fits(state) -> None:
    bad = {f"a.very.long.prefix.that.goes.on.and.on.{k}": v for k, v in state.items()}
    bad.update({k: torch.zeros(2) for k in list(state)[:30] if state[k].is_floating_point()})  # mis-shaped
    error = _error(bad, source="/" + "deep/" * 20 + "checkpoint.ckpt")
    text = str(error)
    assert "missing keys: " in text and "unexpected keys: " in text and "mis-shaped keys: " in text
    assert "start with 'a.very.long.prefix.that.goes.on.and.on.': strip the prefix" in text
    assert error.misshaped and error.unexpected and error.missing


def test_create_model_from_a_lightning_state_dict_file(state, tmp_path: Path) -> None:
    path = save_weights({f"model.{k}": v for k, v in state.items()}, tmp_path / "lightning.safetensors")
    with pytest.raises(ValueError, match=r"start with 'model\.': a Lightning checkpoint") as info:
        create_model("resnet18", num_classes=10, pretrained=path)
    assert len(str(info.value)) <= MAX_MISMATCH_MESSAGE + 100
