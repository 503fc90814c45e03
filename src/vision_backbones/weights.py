"""Safe, strict, atomic weight files.

Weights are read from safetensors, or from PyTorch files with ``torch.load(weights_only=True)``:
nothing is ever unpickled. A checkpoint that does not fit is reported (counts, the first keys, a
detected prefix with its fix; every key in the error's ``details``) before the model is touched.
Files are written to a temporary name and renamed, so an interrupted save never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor, nn

from vision_backbones.io import atomic_write_stream

logger = logging.getLogger(__name__)

MODEL_KEY = "vision_backbones.model"
OVERRIDES_KEY = "vision_backbones.overrides"
HEAD_PREFIX = "head."


def _untuple(value: Any) -> Any:
    return tuple(_untuple(v) for v in value) if isinstance(value, list) else value


def _cause(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _check_readable(path: Path) -> None:
    """A one-line ``ValueError`` naming the file when it cannot be opened (missing, folder, no permission, empty)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"weights file {str(path)!r} does not exist") from None
    except PermissionError:
        raise ValueError(f"cannot read weights file {str(path)!r}: permission denied (on its folder)") from None
    if path.is_dir():
        raise ValueError(f"weights file {str(path)!r} is a folder; expected a .safetensors or .pth file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read weights file {str(path)!r}: permission denied")
    if size == 0:
        raise ValueError(f"cannot read weights file {str(path)!r}: the file is empty (0 bytes)")


# Config fields renamed to the one vocabulary (issue 15), per family: old name -> new name, or
# (new name, conversion) where the meaning changed form. Applied only to the architecture stored in a
# checkpoint's metadata, so files written before the rename still load; ``create_model`` itself
# accepts only the new names.
RENAMED_FIELDS: dict[str, dict[str, str | tuple[str, Callable[[Any], Any]]]] = {
    "vovnet": {"out_channels": "widths", "mid_channels": "mid_widths"},
    "shufflenet_v1": {"stage_channels": "widths"},
    "shufflenet_v2": {"stage_channels": "widths"},
    "nasnet": {"stem_filters": "stem_channels", "penultimate_filters": "penultimate_channels"},
    "inception_resnet_v2": {"final_channels": "head_channels"},
    "inception_v3": {"mid_channels": "mid_widths"},
    "senet": {"se_reduction": ("se_ratio", lambda reduction: 1 / reduction)},
}


def upgrade_stored_overrides(family: str, stored: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """``stored`` with the old field names of ``family`` renamed (``out_channels`` -> ``widths`` in VoVNet)."""
    renames = RENAMED_FIELDS.get(family, {})
    upgraded: dict[str, Any] = {}
    for key, value in stored.items():
        rule = renames.get(key)
        if rule is None:
            upgraded[key] = value
            continue
        new, convert = (rule, None) if isinstance(rule, str) else rule
        if new in stored:
            raise ValueError(f"{source!r}: metadata stores both {key!r} and its new name {new!r}; expected one of them")
        try:
            upgraded[new] = convert(value) if convert else value
        except (TypeError, ZeroDivisionError, ArithmeticError):
            raise ValueError(f"{source!r}: stored {key}={value!r} cannot be read as {new!r}") from None
    return upgraded


def _stored_overrides(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    text = metadata.get(OVERRIDES_KEY, "{}")
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{str(path)!r}: metadata {OVERRIDES_KEY!r} is not valid JSON ({error.msg} at char {error.pos})"
        ) from None
    if not isinstance(overrides, dict):
        raise ValueError(
            f"{str(path)!r}: metadata {OVERRIDES_KEY!r} must be a JSON object, got {type(overrides).__name__}"
        )
    return {k: _untuple(v) for k, v in overrides.items()}


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, stored_overrides)`` from a safetensors or PyTorch weights file.

    A file that cannot be read (missing, no permission, empty, truncated, not this format, bad
    metadata) is a one-line ``ValueError`` naming the file and the cause.
    """
    path = Path(path)
    _check_readable(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118  (safe_open is not a dict)
        except Exception as error:
            raise ValueError(
                f"cannot read {str(path)!r} as safetensors ({path.stat().st_size} bytes; truncated or not safetensors?): {_cause(error)}"
            ) from None
        return state_dict, _stored_overrides(path, metadata)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read {str(path)!r} as plain tensors (weights_only=True): {_cause(error)}") from None
    for wrapper in ("state_dict", "model", "model_ema"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"{str(path)!r} holds no state dict of tensors")
    return dict(loaded), {}


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(file: IO[bytes], tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> None:
    """The safetensors format, streamed, byte-reproducible: sorted header keys, tensors by (item size, name).

    (``safetensors.torch.save_file`` orders the metadata by a hash map, so two runs differ, and
    writes a temporary file of its own beside the target.)
    """
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))  # larger items first: every offset aligned
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for key in order:
        tensor = tensors[key]
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"cannot store {key!r} of dtype {tensor.dtype} in safetensors")
        size = tensor.numel() * tensor.element_size()
        header[key] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    file.write(struct.pack("<Q", len(encoded)))
    file.write(encoded)
    for key in order:
        tensor = tensors[key].detach().cpu().contiguous()
        if tensor.numel():
            file.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def save_weights(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` to a safetensors file atomically, with the architecture in its metadata."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"expected a .safetensors output path, got {str(path)!r}")
    metadata = {"format": "pt", OVERRIDES_KEY: json.dumps(dict(overrides or {}), sort_keys=True)}
    if model_name:
        metadata[MODEL_KEY] = model_name
    tensors = {key: value.detach().cpu() for key, value in state_dict.items()}
    atomic_write_stream(path, lambda file: write_safetensors(file, tensors, metadata))
    return path


def _check_values(key: str, value: Tensor, expected: Tensor, source: str) -> None:
    """Floating weights stay floating and finite; integer buffers (``num_batches_tracked``) stay integer."""
    if value.is_complex():
        raise ValueError(
            f"checkpoint {source!r}: {key} is complex ({value.dtype}); expected real floating-point weights"
        )
    if expected.is_floating_point():
        if not value.is_floating_point():
            raise ValueError(
                f"checkpoint {source!r}: {key} has dtype {value.dtype}; expected floating-point weights (model: {expected.dtype})"
            )
        if value.numel() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"checkpoint {source!r}: {key} has {bad} NaN/inf values; expected finite weights")
    elif value.is_floating_point():
        raise ValueError(f"checkpoint {source!r}: {key} has dtype {value.dtype}; expected {expected.dtype}")


def _adapt_input_channels(weight: Tensor, in_channels: int) -> Tensor:
    """RGB stem weights for another channel count: summed for 1 channel, tiled and rescaled otherwise."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


# A key-mismatch message stays about this short: counts and the first keys; every key is in ``.details``.
MAX_MISMATCH_MESSAGE = 500
# What a common key prefix of a checkpoint means, and the fix.
PREFIX_HINTS = {
    "model.": "a Lightning checkpoint; use `backbones export-backbone CKPT OUT.safetensors` or strip the prefix",
    "module.": "saved from DataParallel / DistributedDataParallel; strip the prefix",
}


class KeyMismatchError(ValueError):
    """A checkpoint whose keys do not fit the model.

    The message is one line of about :data:`MAX_MISMATCH_MESSAGE` characters: per kind (missing,
    unexpected, mis-shaped) the count and the first keys, and a detected common prefix with the fix.
    ``details`` lists every key, one per line; ``missing`` / ``unexpected`` / ``misshaped`` hold them.
    """

    def __init__(
        self, head: str, *, missing: list[str], unexpected: list[str], misshaped: list[str], hint: str | None = None
    ) -> None:
        self.missing, self.unexpected, self.misshaped = list(missing), list(unexpected), list(misshaped)
        kinds = [(n, k) for n, k in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if k]
        tail = (f"; {hint}" if hint else "") + " (every key: the error's .details)"
        message = ""
        for shown, width in ((5, 80), (3, 60), (2, 50), (1, 40)):  # shorter until it fits
            parts = [f"{name} keys: {_first(keys, shown, width)}" for name, keys in kinds]
            message = f"{head}: " + "; ".join(parts) + tail
            if len(message) <= MAX_MISMATCH_MESSAGE:
                break
        super().__init__(message)
        self.details = "\n".join(
            [head + ":"] + [f"{name} keys ({len(keys)}):\n" + "\n".join(f"  {k}" for k in keys) for name, keys in kinds]
        )


def _first(keys: list[str], shown: int, width: int) -> str:
    """The first ``shown`` keys (each cut to ``width`` characters) and how many more there are."""
    text = ", ".join(k if len(k) <= width else k[: width - 3] + "..." for k in keys[:shown])
    return text + (f" (+{len(keys) - shown} more, {len(keys)} in all)" if len(keys) > shown else "")


def _prefix_hint(unexpected: list[str], expected: set[str]) -> str | None:
    """``keys start with 'model.': <what it means and the fix>`` when most unexpected keys are the model's own
    keys behind one prefix (a Lightning or DataParallel checkpoint), else ``None``."""
    counts: dict[str, int] = {}
    for key in unexpected:
        parts = key.split(".")
        for cut in range(1, len(parts)):
            if ".".join(parts[cut:]) in expected:
                prefix = ".".join(parts[:cut]) + "."
                counts[prefix] = counts.get(prefix, 0) + 1
                break
    if not counts:
        return None
    prefix, count = max(counts.items(), key=lambda item: item[1])
    if 2 * count < len(unexpected):
        return None
    fix = PREFIX_HINTS.get(prefix, "strip the prefix")
    return f"{count} of {len(unexpected)} unexpected keys start with {prefix!r}: {fix}"


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> dict[str, Tensor]:
    """The tensors to load into ``model``, or a :class:`KeyMismatchError` summarising the keys that do not fit.

    Head weights are optional: a features-only model ignores them, and a model whose head does not
    match the checkpoint's (another number of classes, or none stored) keeps its fresh head: the
    fine-tuning case. Every other key must be present, expected and of the right shape.
    """
    expected = model.state_dict()
    in_channels = getattr(model, "in_channels", 3)
    # A features model built only up to some level ignores the weights of the levels it left out.
    ignored = (HEAD_PREFIX, *getattr(model, "pruned_prefixes", lambda: ())())
    body = {k: v for k, v in state_dict.items() if not k.startswith(ignored)}
    usable: dict[str, Tensor] = {}
    unexpected, misshaped = [], []
    for key, value in body.items():
        if key not in expected:
            unexpected.append(key)
            continue
        _check_values(key, value, expected[key], source)
        target = expected[key].shape
        if value.shape != target:
            adaptable = value.dim() == 4 and value.shape[1] == 3 and target[1] == in_channels
            if adaptable and value.shape[0] == target[0] and value.shape[2:] == target[2:]:
                value = _adapt_input_channels(value, in_channels)
            else:
                misshaped.append(f"{key} (checkpoint {tuple(value.shape)}, model {tuple(target)})")
                continue
        usable[key] = value
    missing = [k for k in expected if not k.startswith(HEAD_PREFIX) and k not in body]
    if missing or unexpected or misshaped:
        raise KeyMismatchError(
            f"checkpoint {source!r} does not fit {type(model).__name__}",
            missing=missing,
            unexpected=unexpected,
            misshaped=misshaped,
            hint=_prefix_hint(unexpected, set(expected)),
        )

    model_head = {k: v for k, v in expected.items() if k.startswith(HEAD_PREFIX)}
    stored_head = {k: v for k, v in state_dict.items() if k.startswith(HEAD_PREFIX)}
    head_fits = bool(stored_head) and all(
        k in model_head and v.shape == model_head[k].shape for k, v in stored_head.items()
    )
    if model_head and head_fits:
        for key, value in stored_head.items():
            _check_values(key, value, model_head[key], source)
        usable.update(stored_head)
        fresh = sorted(set(model_head) - set(stored_head))
        if fresh:  # e.g. auxiliary classifiers, which torchvision drops from its pretrained GoogLeNet
            logger.warning("%s: no weights for %s; they keep their initialisation", source, ", ".join(fresh))
    elif model_head:
        logger.warning("%s: no head weights fit this head (other num_classes?); keeping a fresh head", source)
    return usable


def load_pretrained(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> nn.Module:
    """Load after ``check_state_dict`` accepted every key; the model is untouched otherwise."""
    usable = check_state_dict(model, state_dict, source=source)
    model.load_state_dict(usable, strict=False)
    return model
