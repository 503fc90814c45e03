"""Precisions, the accuracy check every deployed artefact passes, and whether this CPU can run bf16.

An artefact's outputs are compared with eager PyTorch on the same inputs before the file is written:

- fp32: the largest absolute difference, relative to the output scale once that exceeds 1;
- bf16 / int8: the cosine similarity of each sample's outputs (the worst sample counts) and, when
  labelled images are given, the top-1 agreement with eager and the change in top-1 accuracy.

The thresholds are named constants below, each with the reason for its value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from vision_backbones.io import jsonable

PRECISIONS = ("fp32", "bf16", "int8")

# fp32: kernels differ only in summation order; float32 rounding (1e-7 relative) grows to ~1e-5
# over a deep net, so 1e-4 leaves margin and still catches any real mistake (a mis-mapped layer
# changes outputs by O(1)). Relative to the output scale when that exceeds 1: random deep nets with
# randomized batch-norm statistics reach logits of 1e4 and more, where 1e-4 absolute is below float32 resolution.
FP32_TOLERANCE = 1e-4
# bf16 keeps 8 mantissa bits (0.4 % per rounding); measured worst-sample cosine over the deploy
# matrix is 0.999+, so 0.99 passes honest bf16 and refuses a broken graph (a wrong layout or
# dropped op gives < 0.9).
BF16_MIN_COSINE = 0.99
# int8 per-channel weights and per-tensor activations: measured mean cosine 0.995+ and worst sample
# 0.92-0.99 on the trained demo / MNIST resnet18 (with 99.4-100 % top-1 agreement), 0.9999 on the
# random-weight deploy matrix; below 0.9 the calibration range or a quantized op is wrong.
INT8_MIN_COSINE = 0.90
MIN_COSINE = {"bf16": BF16_MIN_COSINE, "int8": INT8_MIN_COSINE}
# With labels: the bar for a shipped quantized model is < 0.5 points of top-1 lost.
MAX_TOP1_DROP_POINTS = 0.5
# A classifier whose reduced-precision copy disagrees with eager on more than 1 image in 20 has
# changed, even when its accuracy happens to hold (errors swapped for other errors).
MIN_TOP1_AGREEMENT = 0.95
# ISA flags with native bf16 dot products (x86 AVX-512 BF16 / AMX, Arm BF16); without them
# oneDNN emulates bf16 by converting to fp32, slower than plain fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclasses.dataclass
class CheckResult:
    """What the check measured and whether the artefact passed (stored as JSON beside it)."""

    precision: str
    runtime: str
    passed: bool
    reason: str
    samples: int
    max_abs_diff: float | None = None
    output_scale: float | None = None
    min_cosine: float | None = None
    mean_cosine: float | None = None
    top1_agreement: float | None = None
    top1_eager: float | None = None
    top1_artefact: float | None = None
    top1_change_points: float | None = None
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as JSON holds it (the form stored in ``OUT.check.json``)."""
        return jsonable(dataclasses.asdict(self))

    def summary(self) -> str:
        """One line for the terminal."""
        parts = [f"{self.precision}/{self.runtime}: {'passed' if self.passed else 'FAILED'}"]
        if self.max_abs_diff is not None:
            parts.append(f"max abs diff {self.max_abs_diff:.2e} (output scale {self.output_scale:.3g})")
        if self.min_cosine is not None:
            parts.append(f"cosine min {self.min_cosine:.5f} mean {self.mean_cosine:.5f}")
        # the top-1 fields are set together (compare_outputs, with labels)
        if self.top1_agreement is not None and self.top1_eager is not None and self.top1_artefact is not None:
            parts.append(
                f"top-1 agreement {100 * self.top1_agreement:.2f} %, top-1 {100 * self.top1_eager:.2f} % -> "
                f"{100 * self.top1_artefact:.2f} % ({self.top1_change_points:+.2f} points)"
            )
        parts.append(f"on {self.samples} images")
        return "; ".join(parts) + ("" if self.passed else f" ({self.reason})")


def _flat(outputs: Sequence[Tensor]) -> Tensor:
    """``(batch, everything)``: every output of a sample joined, so multi-level features count as one vector."""
    return torch.cat([o.float().reshape(o.shape[0], -1) for o in outputs], dim=1)


def compare_outputs(
    expected: Sequence[Tensor], got: Sequence[Tensor], *, precision: str, runtime: str, labels: Tensor | None = None
) -> CheckResult:
    """Check ``got`` (the artefact's outputs) against ``expected`` (eager fp32) for ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if len(expected) != len(got):
        return CheckResult(precision, runtime, False, f"{len(got)} outputs, eager has {len(expected)}", 0)
    for a, b in zip(expected, got):
        if tuple(a.shape) != tuple(b.shape):
            return CheckResult(precision, runtime, False, f"output shape {tuple(b.shape)}, eager {tuple(a.shape)}", 0)
    reference, candidate = _flat(expected), _flat(got)
    samples = reference.shape[0]
    if precision == "fp32":
        difference = float((candidate - reference).abs().max())
        scale = float(reference.abs().max())
        allowed = FP32_TOLERANCE * max(1.0, scale)
        passed = difference <= allowed  # also False for NaN
        reason = "" if passed else f"max abs diff {difference:.2e} > {allowed:.2e}"
        return CheckResult(
            precision,
            runtime,
            passed,
            reason,
            samples,
            max_abs_diff=difference,
            output_scale=scale,
            thresholds={"tolerance": FP32_TOLERANCE},
        )
    cosine = torch.nn.functional.cosine_similarity(candidate.double(), reference.double(), dim=1, eps=1e-12)
    cosine = torch.nan_to_num(cosine, nan=-1.0)
    min_cosine = float(cosine.min())
    result = CheckResult(
        precision,
        runtime,
        True,
        "",
        samples,
        min_cosine=min_cosine,
        mean_cosine=float(cosine.mean()),
        thresholds={"min_cosine": MIN_COSINE[precision]},
    )
    failures = []
    if min_cosine < MIN_COSINE[precision]:
        failures.append(f"cosine {min_cosine:.4f} < {MIN_COSINE[precision]}")
    logits = [(a, b) for a, b in zip(expected, got) if a.dim() == 2]
    if labels is not None and len(logits) == 1:
        eager_top1, artefact_top1 = logits[0][0].argmax(1), logits[0][1].argmax(1)
        result.top1_agreement = float((eager_top1 == artefact_top1).double().mean())
        result.top1_eager = float((eager_top1 == labels).double().mean())
        result.top1_artefact = float((artefact_top1 == labels).double().mean())
        result.top1_change_points = 100 * (result.top1_artefact - result.top1_eager)
        result.thresholds.update(max_top1_drop_points=MAX_TOP1_DROP_POINTS, min_top1_agreement=MIN_TOP1_AGREEMENT)
        if -result.top1_change_points >= MAX_TOP1_DROP_POINTS:
            failures.append(f"top-1 dropped {-result.top1_change_points:.2f} points (allowed < {MAX_TOP1_DROP_POINTS})")
        if result.top1_agreement < MIN_TOP1_AGREEMENT:
            failures.append(f"top-1 agreement {100 * result.top1_agreement:.2f} % < {100 * MIN_TOP1_AGREEMENT:.0f} %")
    result.passed = not failures
    result.reason = "; ".join(failures)
    return result


def has_native_bf16(flags: Sequence[str] | None = None) -> bool:
    """Whether this CPU has bf16 dot-product instructions (``flags``: :func:`~vision_backbones.measure.machine.isa_flags`)."""
    if flags is None:
        from vision_backbones.measure import machine

        flags = machine.isa_flags()
    return any(flag in flags for flag in BF16_FLAGS)


def require_native_bf16(flags: Sequence[str] | None = None) -> None:
    """Refuse bf16 in one line on a CPU that would only emulate it (slower than fp32)."""
    if not has_native_bf16(flags):
        from vision_backbones.measure.machine import cpu_model

        raise ValueError(
            f"precision 'bf16': this CPU ({cpu_model()}) has none of {', '.join(BF16_FLAGS)}, so bf16 would be emulated "
            "and slower than fp32; expected --precision fp32 or int8"
        )
