"""Build, check, choose and write a deployed model: ``backbones export --precision P --runtime R``.

1. Inputs for the check: labelled images (``check_data``) or the calibration images, through the
   eval transform; random images when neither is given (fp32 / bf16 only).
2. Eager fp32 outputs of the model on them, then the artefact's outputs (its bytes loaded back),
   compared by :func:`~vision_backbones.deploy.precision.compare_outputs`. A dynamic-shape artefact
   also runs a second batch and image size, whose output shapes must match eager.
3. ``runtime="auto"``: every runtime offering the precision is built and checked; the passing ones
   are timed here in interleaved rounds and the fastest is kept.
4. Only an artefact that passed is written (atomically, file by file), with its check result as
   JSON beside it; a failed check raises a one-line ``ValueError`` and writes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.deploy.calibration import LabelledImages
from vision_backbones.deploy.formats import outputs
from vision_backbones.deploy.precision import CheckResult, compare_outputs, require_native_bf16
from vision_backbones.deploy.runtimes import SUFFIXES, Artefact, build, check_file_for, check_pair, runtimes_for
from vision_backbones.io import atomic_write_bytes, write_json

CHECK_BATCH = 32  # images per predictor call while checking: bounds memory, any size is correct
RANDOM_CHECK_IMAGES = 4
AUTO_ROUNDS = 5
AUTO_BATCH = 8  # the batch --runtime auto times candidates at (unless a static batch is set)


@dataclasses.dataclass
class Outcome:
    """One candidate of an export: its artefact (``None`` if building failed), check and timing."""

    runtime: str
    artefact: Artefact | None
    check: CheckResult
    milliseconds: float | None = None


def _run(predict: Any, images: Tensor) -> list[Tensor]:
    chunks = [predict(batch) for batch in images.split(CHECK_BATCH)]
    return [torch.cat([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]


def _eager(model: nn.Module, images: Tensor) -> list[Tensor]:
    with torch.inference_mode():
        return _run(lambda x: outputs(model(x)), images)


def check_artefact(
    artefact: Artefact,
    model: nn.Module,
    images: Tensor,
    labels: Tensor | None,
    *,
    expected: list[Tensor] | None = None,
    other_shape: Tensor | None = None,
) -> CheckResult:
    """Compare ``artefact`` with eager ``model`` on ``images`` (and the output shapes on ``other_shape``)."""
    expected = expected if expected is not None else _eager(model, images)
    result = compare_outputs(
        expected, _run(artefact.predict, images), precision=artefact.precision, runtime=artefact.runtime, labels=labels
    )
    if result.passed and other_shape is not None:
        want = [tuple(t.shape) for t in _eager(model, other_shape)]
        got = [tuple(t.shape) for t in artefact.predict(other_shape)]
        if got != want:
            result.passed, result.reason = False, f"input {tuple(other_shape.shape)} gave outputs {got}, eager {want}"
    return result


def time_artefacts(outcomes: Sequence[Outcome], sample: Tensor, *, rounds: int = AUTO_ROUNDS) -> None:
    """Median milliseconds per call of each built artefact on ``sample``, interleaved (set in place)."""
    from vision_backbones.measure.timing import interleaved_times

    functions: dict[str, Callable[[], object]] = {
        o.runtime: functools.partial(o.artefact.predict, sample) for o in outcomes if o.artefact is not None
    }
    if not functions:
        return
    times = interleaved_times(functions, rounds=rounds, warmup=2)
    for outcome in outcomes:
        if outcome.runtime in functions:
            outcome.milliseconds = 1e3 * statistics.median(times["wall"][outcome.runtime])


def output_path(output: str | Path, runtime: str, *, auto: bool) -> Path:
    """The file written: ``output`` itself, or (``auto``) ``output`` with the winning runtime's suffix."""
    output = Path(output)
    suffix = SUFFIXES[runtime]
    if auto:
        return output.with_suffix(suffix)
    if output.suffix != suffix:
        raise ValueError(f"output {str(output)!r} for runtime {runtime!r}: expected a {suffix} path")
    return output


def check_outputs(output: str | Path, precision: str, runtime: str, *, force: bool) -> list[Path]:
    """The file(s) an export may write: each with its runtime's suffix, and new unless ``force`` (one line otherwise)."""
    from vision_backbones.io import check_overwrite

    candidates = runtimes_for(precision) if runtime == "auto" else [runtime]
    return [
        check_overwrite(output_path(output, candidate, auto=runtime == "auto"), force=force) for candidate in candidates
    ]


def check_export_arguments(
    precision: Any,
    runtime: Any,
    *,
    image_size: Any,
    static_batch: Any = None,
    threads: Any = None,
    calibration: Any = None,
    compile: Any = True,
    force: Any = False,
) -> None:
    """Every argument of :func:`export_checked` checked before anything is loaded, built or written.

    ``backbones export --precision/--runtime`` calls it before reading any image, so a Python caller
    and the command line get the same one-line ``ValueError`` (naming the flag and the keyword).
    ``calibration``: whatever stands for the calibration images (a path or ``LabelledImages``), ``None`` if absent.
    """
    from vision_backbones.validate import check_bool, check_int

    check_pair(precision, runtime)
    check_int("--image-size (image_size)", image_size, min=1)
    if static_batch is not None:
        check_int("--static-batch (static_batch)", static_batch, min=1)
        if runtime not in ("openvino", "auto"):
            raise ValueError(
                f"--static-batch (static_batch) {static_batch} with runtime {runtime!r}: only OpenVINO takes a static "
                "input shape (the others stay dynamic); expected --runtime openvino or auto, or no --static-batch"
            )
    if threads is not None:
        check_int("--threads (threads)", threads, min=1)
    check_bool("compile", compile)
    check_bool("force", force)
    if precision == "bf16":
        require_native_bf16()
    if precision == "int8" and calibration is None:
        raise ValueError(
            "precision 'int8' needs calibration images; expected --calibration PATH (a folder of class folders or a WebDataset shard)"
        )


def check_model(model: Any, image_size: int) -> list[Tensor]:
    """``model`` must be an ``nn.Module`` that runs a ``(1, 3, image_size, image_size)`` batch; its outputs on zeros.

    One line instead of a matmul error deep in the exporter when the model is not an image model.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model must be an nn.Module taking (N, 3, H, W) images (a Backbone from create_model), got {type(model).__name__}"
        )
    minimum = getattr(getattr(model, "model", model), "min_input_size", 1)
    if isinstance(minimum, int) and image_size < minimum:
        raise ValueError(f"image_size {image_size} is smaller than this network takes; expected >= {minimum}")
    shape = (1, 3, image_size, image_size)
    try:
        with torch.inference_mode():
            return outputs(model.eval()(torch.zeros(shape)))
    except Exception as error:  # any failure here means the model does not take image batches
        reason = (str(error).strip().splitlines() or [""])[0][:120]
        raise ValueError(
            f"model {type(model).__name__} cannot run a {shape} image batch ({type(error).__name__}: {reason}); "
            "expected a Backbone or another model taking 4-D (N, 3, H, W) images"
        ) from None


def _check_labels(check_data: LabelledImages, trial: list[Tensor]) -> None:
    """Labelled check images must index the model's classes: another class count gives a meaningless top-1."""
    if check_data.labels is None or len(trial) != 1 or trial[0].dim() != 2:
        return  # no labels, or no logits (features): only the outputs are compared
    classes = trial[0].shape[1]
    if check_data.classes is not None and check_data.classes != classes:
        raise ValueError(
            f"check data {check_data.source!r} has {check_data.classes} classes, the model {classes} outputs; "
            f"expected labelled images of the model's {classes} classes (--num-classes / num_classes)"
        )
    if check_data.labels.numel() and not 0 <= int(check_data.labels.min()) <= int(check_data.labels.max()) < classes:
        raise ValueError(
            f"check data {check_data.source!r} has labels {int(check_data.labels.min())}..{int(check_data.labels.max())}, "
            f"the model {classes} outputs; expected labels in 0..{classes - 1} (--num-classes / num_classes)"
        )


def export_checked(
    model: nn.Module,
    output: str | Path,
    *,
    precision: str,
    runtime: str,
    image_size: int,
    calibration: LabelledImages | None = None,
    check_data: LabelledImages | None = None,
    static_batch: int | None = None,
    threads: int | None = None,
    compile: bool = True,
    force: bool = False,
    report: Any = print,
) -> tuple[Path, CheckResult]:
    """Export ``model`` for ``precision`` on ``runtime`` (or ``"auto"``) after checking it; nothing is written on failure.

    ``static_batch`` fixes the OpenVINO input to ``(static_batch, 3, image_size, image_size)``
    (other runtimes keep dynamic shapes). Returns the written path and its check result. Bad
    arguments (:func:`check_export_arguments`), a model that takes no image batch, or labelled
    check images of another class count are refused in one ``ValueError`` before anything is built.
    """
    check_export_arguments(
        precision,
        runtime,
        image_size=image_size,
        static_batch=static_batch,
        threads=threads,
        calibration=calibration,
        compile=compile,
        force=force,
    )
    for name, data in (("calibration", calibration), ("check_data", check_data)):
        if data is not None and not isinstance(data, LabelledImages):
            raise ValueError(
                f"{name} must be LabelledImages (from deploy.calibration.load_images) or None, got {type(data).__name__}"
            )
    trial = check_model(model, image_size)
    if check_data is not None:
        _check_labels(check_data, trial)
    model = model.eval()
    candidates = runtimes_for(precision) if runtime == "auto" else [runtime]
    check_outputs(output, precision, runtime, force=force)
    checked = check_data if check_data is not None else calibration
    if checked is not None:
        images, labels = checked.images, (checked.labels if check_data is not None else None)
    else:
        images, labels = (
            torch.randn(RANDOM_CHECK_IMAGES, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)),
            None,
        )
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        raise ValueError(
            f"check images are {tuple(images.shape[-2:])}, expected {image_size}x{image_size} (--crop-size must equal --image-size)"
        )
    sample = images[:1]
    other = None if static_batch is not None else torch.randn(2, 3, image_size + 32, image_size + 32)
    expected = _eager(model, images)
    calibration_batches = calibration.batches(CHECK_BATCH) if calibration is not None else []
    outcomes = []
    for candidate in candidates:
        options: dict[str, Any] = {"calibration": calibration_batches, "threads": threads}
        if candidate == "openvino" and static_batch is not None:
            options["static_shape"] = (static_batch, 3, image_size, image_size)
        if candidate == "torch":
            options["compile"] = compile
        try:
            artefact = build(model, sample, precision=precision, runtime=candidate, **options)
        except Exception as error:  # auto: one runtime failing to convert leaves the others
            if runtime != "auto":
                raise
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            result = CheckResult(precision, candidate, False, f"build failed: {type(error).__name__}: {message}", 0)
            report(f"check {result.summary()}")
            outcomes.append(Outcome(candidate, None, result))
            continue
        if candidate == "openvino" and static_batch is not None:
            result = _check_static(artefact, images, labels, static_batch, expected)
        else:
            # the torch program has a dynamic batch but a fixed image size
            second = other[:, :, :image_size, :image_size] if candidate == "torch" and other is not None else other
            result = check_artefact(artefact, model, images, labels, expected=expected, other_shape=second)
        report(f"check {result.summary()}")
        outcomes.append(Outcome(candidate, artefact, result))
    passing = [o for o in outcomes if o.check.passed]
    if not passing:
        raise ValueError(
            f"no file written: the {precision} export failed its check ({'; '.join(o.runtime + ': ' + o.check.reason for o in outcomes)})"
        )
    if len(passing) > 1:
        batch = static_batch or AUTO_BATCH
        time_artefacts(passing, images[torch.arange(batch) % images.shape[0]])
        for outcome in passing:
            report(f"timed {outcome.runtime}: {outcome.milliseconds:.2f} ms per call")
    best = min(passing, key=lambda o: o.milliseconds if o.milliseconds is not None else 0.0)
    assert best.artefact is not None
    target = output_path(output, best.runtime, auto=runtime == "auto")
    best.check.extra = {
        "image_size": image_size,
        "static_batch": static_batch,
        "candidates": {
            o.runtime: {"passed": o.check.passed, "reason": o.check.reason, "milliseconds": o.milliseconds}
            for o in outcomes
        },
        "settings": best.artefact.settings,
    }
    write_artefact(best.artefact, target, best.check)
    return target, best.check


def _check_static(
    artefact: Artefact, images: Tensor, labels: Tensor | None, batch: int, expected: list[Tensor]
) -> CheckResult:
    """A static-shape artefact takes exactly ``batch`` images: the last chunk is padded by repeating images."""
    count = images.shape[0]
    padded = images[torch.arange(-(-count // batch) * batch) % count]
    chunks = [artefact.predict(chunk) for chunk in padded.split(batch)]
    got = [torch.cat([chunk[i] for chunk in chunks])[:count] for i in range(len(chunks[0]))]
    return compare_outputs(expected, got, precision=artefact.precision, runtime=artefact.runtime, labels=labels)


def write_artefact(artefact: Artefact, target: Path, check: CheckResult) -> list[Path]:
    """Write the artefact's files (``.bin`` before ``.xml``), then its check result as JSON; returns the paths."""
    written = []
    for suffix, data in artefact.files.items():
        written.append(atomic_write_bytes(target.with_suffix(suffix), data))
    written.append(
        write_json(check_file_for(target), {**check.as_dict(), "settings": artefact.settings}, sort_keys=True)
    )
    return written
