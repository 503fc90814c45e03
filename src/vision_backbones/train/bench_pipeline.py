"""Images/s of the training input pipeline vs a plain torchvision ImageFolder + transforms.v2 pipeline.

    python -m vision_backbones.cli.bench_pipeline [--workers 0 2] [--rounds 5] [--write benchmarks/RESULTS.md]

Both read real photographs (scikit-image's and scikit-learn's, cut to ImageNet-like sizes 500x375 to
800x600, JPEG quality 90, :func:`~vision_backbones.train.samples.write_benchmark_folders`) with the
same augmentations (RandomResizedCrop 176, flip, TrivialAugmentWide, RandomErasing 0.1) and
produce normalized float batches of 32. The reference is torchvision's reference preset (PIL
transforms, TrivialAugmentWide with the preset's bilinear interpolation like ours, then ToDtype /
Normalize / RandomErasing per image in the workers) on the original JPEGs; the former reference
(TrivialAugmentWide with v2's default nearest interpolation: less work than ours) is measured too. Ours is measured step by step, each step adding one change to the one before (``STEPS``).

Every measurement runs one epoch in a child process forked from the benchmark (everything already
imported): the memory fix changes process-wide allocator settings, which would otherwise leak into
the reference measured after it. The steps and
the reference are interleaved (their order rotates each round) and the table shows the median
over rounds of the per-round ratio ours / reference, by wall clock and by CPU time (this process
and its loader workers: the work done, much less sensitive to other load on a shared machine).
Results accumulate in a JSON file, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vision_backbones.io import read_json, write_json
from vision_backbones.train.decode import DecoderName
from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD

BATCH_SIZE = 32
MAX_SIDE = 320


@dataclass(frozen=True)
class Step:
    """One configuration of our pipeline: which storage, decoder and fixes it uses."""

    label: str
    storage: str  # "original" or "max-side-320"
    decoder: DecoderName  # "pillow" or "simplejpeg"
    reuse_memory: bool
    legacy_normalization: bool  # the former on_after_batch_transfer: (x.float() - mean) / std


REFERENCE = "reference"
REFERENCE_NEAREST = (
    "reference-nearest-ta"  # the former reference: TrivialAugmentWide with nearest (less work than ours)
)
STEPS = {
    "baseline": Step("baseline (the pipeline before this change)", "original", "pillow", False, True),
    "fast-path": Step(
        "+ fast path fixes (freed memory reused, in-place normalization)", "original", "pillow", True, False
    ),
    "max-side-320": Step(f"+ max-side {MAX_SIDE} storage (JPEG q90)", "max-side-320", "pillow", True, False),
    "simplejpeg": Step(
        "+ simplejpeg decoding (DCT scaling where the crop allows)", "max-side-320", "simplejpeg", True, False
    ),
}
EXTRA = {
    "simplejpeg-original": Step(
        "fast path + simplejpeg DCT scaling, original storage (not cumulative)", "original", "simplejpeg", True, False
    )
}
ALL_STEPS = {**STEPS, **EXTRA}


def plain_torchvision_loader(root: Path, batch_size: int, workers: int, augment_interpolation: str = "bilinear"):
    """torchvision's reference preset (``references/classification/presets.py``) on an ImageFolder.

    The preset passes its interpolation (bilinear) to TrivialAugmentWide, as our transform does;
    ``augment_interpolation="nearest"`` is v2's default, the reference this benchmark used before,
    whose rotations and shears cost about half as much (0.24 vs 0.51 ms per 176 px image).
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import InterpolationMode, v2

    transform = v2.Compose(
        [
            v2.RandomResizedCrop(176, antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.TrivialAugmentWide(interpolation=InterpolationMode(augment_interpolation)),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
            v2.RandomErasing(0.1),
        ]
    )
    dataset = ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers
    ), lambda batch: batch


def our_loader(root: Path, batch_size: int, workers: int, step: Step = STEPS["simplejpeg"]):
    """Our datamodule's training loader on ``root`` (a ``train`` folder) and what runs after transfer."""
    from vision_backbones.train.datamodule import ImageDataModule

    module = ImageDataModule(
        str(root.parent),
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=False,
        decoder=step.decoder,
        reuse_memory=step.reuse_memory,
    )
    if step.legacy_normalization:
        mean, std = (
            torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1) * 255.0,
            torch.tensor(IMAGENET_STD).view(1, -1, 1, 1) * 255.0,
        )
        return module.train_dataloader(), lambda batch: ((batch[0].float() - mean) / std, batch[1], batch[2])
    return module.train_dataloader(), lambda batch: module.on_after_batch_transfer(batch, 0)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the loader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_epoch(name: str, data: Path, workers: int) -> dict[str, float]:
    """One epoch of ``name`` (``reference`` or a step) over ``data/<storage>/train``: images/s and CPU ms per image."""
    torch.set_num_threads(1)  # the loader's main process: workers run with one thread too
    if name in (REFERENCE, REFERENCE_NEAREST):
        interpolation = "nearest" if name == REFERENCE_NEAREST else "bilinear"
        loader, finish = plain_torchvision_loader(data / "original" / "train", BATCH_SIZE, workers, interpolation)
    else:
        step = ALL_STEPS[name]
        loader, finish = our_loader(data / step.storage / "train", BATCH_SIZE, workers, step)
    count = 0
    cpu, start = _cpu_seconds(), time.perf_counter()
    for batch in loader:
        images = finish(batch)[0]
        count += len(images)
    del loader  # join the workers, so their CPU time is counted
    wall = time.perf_counter() - start
    return {"images_per_s": count / wall, "cpu_ms_per_image": (_cpu_seconds() - cpu) / count * 1e3, "images": count}


def prepare_data(data: Path, *, classes: int, per_class: int) -> None:
    """``data/original/train`` (ImageNet-like JPEGs) and ``data/max-side-320/train`` (its downscaled copy), once."""
    from vision_backbones.train.image_storage import resize_class_folders
    from vision_backbones.train.samples import write_benchmark_folders

    if not (data / "original" / "train").is_dir():
        write_benchmark_folders(data / "original" / "train", classes=classes, per_class=per_class, quality=90)
    if not (data / "max-side-320" / "train").is_dir():
        resize_class_folders(data / "original", data / "max-side-320", split="train", max_side=MAX_SIDE, quality=90)
    for storage in ("original", "max-side-320"):
        (data / storage / "val" / "class_000").mkdir(parents=True, exist_ok=True)


def _measure_in_child(name: str, data: Path, workers: int, queue: Any) -> None:
    try:
        queue.put(measure_epoch(name, data, workers))
    except BaseException as error:  # reported by the parent
        queue.put({"error": f"{type(error).__name__}: {error}"})


def _run_one(name: str, data: Path, workers: int) -> dict[str, float]:
    """One epoch in a forked child: what it changes process-wide (allocator settings) dies with it."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_measure_in_child, args=(name, data, workers, queue))
    child.start()
    result = queue.get(timeout=600)
    child.join()
    if "error" in result:
        raise RuntimeError(f"measuring {name} with {workers} workers failed: {result['error']}")
    return result


def run_rounds(data: Path, results_path: Path, *, workers: list[int], rounds: int, names: list[str]) -> dict[str, Any]:
    """Interleaved rounds (order rotating), appended to ``results_path`` after every measurement."""
    from vision_backbones.progress import progress_bar

    results: dict[str, Any] = read_json(results_path) if results_path.exists() else {}
    results.setdefault("load_start", os.getloadavg())
    todo = [(w, r, names[(i + r) % len(names)]) for w in workers for r in range(rounds) for i in range(len(names))]
    todo = [(w, r, n) for w, r, n in todo if len(results.get(str(w), {}).get(n, [])) <= r]
    with progress_bar(transient=False) as progress:
        task = progress.add_task("pipeline benchmark", total=len(todo))
        for w, r, name in todo:
            progress.update(task, description=f"{w} workers, round {r + 1}/{rounds}: {name}")
            results.setdefault(str(w), {}).setdefault(name, []).append(_run_one(name, data, w))
            results["load_end"] = os.getloadavg()
            write_json(results_path, results, indent=1)
            progress.advance(task)
    return results


def _median_ratio(ours: list[dict], reference: list[dict], key: str, invert: bool) -> tuple[float, float, float]:
    rounds = min(len(ours), len(reference))
    ratios = [
        (reference[i][key] / ours[i][key]) if invert else (ours[i][key] / reference[i][key]) for i in range(rounds)
    ]
    return statistics.median(ratios), min(ratios), max(ratios)


def detail_kept(
    size: tuple[int, int], max_side: int, *, crop: int = 176, draws: int = 4000, seed: int = 0
) -> dict[str, float]:
    """What storing at ``max_side`` costs RandomResizedCrop at ``crop`` px, on a ``size`` photo.

    Detail of one crop = source pixels per output pixel (linear, capped at 1: beyond that the
    resize throws pixels away anyway). Returns the share of crops with less detail than from the
    original, the mean detail kept (stored / original) and the worst case.
    """
    from torchvision.transforms import RandomResizedCrop

    width, height = size
    factor = min(1.0, max_side / max(width, height))
    generator = torch.Generator().manual_seed(seed)
    kept = []
    state = torch.get_rng_state()
    torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
    try:
        for _ in range(draws):
            _, _, crop_h, crop_w = RandomResizedCrop.get_params(
                torch.empty(()).expand(3, height, width), [0.08, 1.0], [3 / 4, 4 / 3]
            )
            side = (crop_h * crop_w) ** 0.5
            kept.append(min(1.0, side * factor / crop) / min(1.0, side / crop))
    finally:
        torch.set_rng_state(state)
    return {
        "share_losing": sum(k < 0.999 for k in kept) / draws,
        "mean_kept": statistics.fmean(kept),
        "worst_kept": min(kept),
    }


def report(results: dict[str, Any], data: Path) -> str:
    """The Markdown section: machine, load, then per worker count the step table."""
    from vision_backbones.measure.machine import describe, machine_info
    from vision_backbones.train.decode import describe_decoder

    meta = read_json(data / "max-side-320" / "train" / "resize-meta.json")
    images = meta["num_samples"]
    lines = [
        "## Training input pipeline: ours / plain torchvision ImageFolder + transforms.v2",
        "",
        f"Generated by `python -m vision_backbones.cli.bench_pipeline` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- Machine: {describe(machine_info(packages=('torchvision', 'PIL')))}",
        f"- Decoders: {describe_decoder('auto')}",
        "- Load average (1/5/15 min) at start: {:.1f} / {:.1f} / {:.1f}; at end: {:.1f} / {:.1f} / {:.1f} (other jobs shared the 2 cores).".format(
            *results["load_start"], *results["load_end"]
        ),
        f"- Data: {images} real photographs (scikit-image + scikit-learn), 500x375 to 800x600 JPEG q90, 8 classes "
        f"({meta['bytes_in'] / images / 1024:.0f} KiB per file); the max-side {MAX_SIDE} copy: {meta['bytes_out'] / images / 1024:.0f} KiB per file.",
        "- Both: RandomResizedCrop 176 (scale 0.08-1, ratio 3/4-4/3), flip 0.5, TrivialAugmentWide, RandomErasing 0.1, "
        f"normalized float batches of {BATCH_SIZE}; one epoch per measurement, each in a freshly forked process, worker start included.",
        "- Ratio = images/s ours / images/s reference within a round (> 1: ours is faster); median [min-max] over rounds. "
        "CPU ratio = CPU time per image reference / ours (process + workers).",
    ]
    for size in ((500, 375), (800, 600)):
        loss = detail_kept(size, MAX_SIDE)
        lines.append(
            f"- Storage at max side {MAX_SIDE}, {size[0]}x{size[1]} photo, 176 px RandomResizedCrop: {loss['share_losing']:.0%} of crops get less "
            f"detail than from the original (source pixels per output pixel below 1); detail kept on average {loss['mean_kept']:.2f}, "
            f"worst {loss['worst_kept']:.2f} (the smallest crops)."
        )
    lines.append("")
    for workers in sorted(k for k in results if k.isdigit()):
        by_name = results[workers]
        reference = by_name.get(REFERENCE, [])
        if not reference:
            continue
        rounds = min(len(v) for v in by_name.values())
        ref_rate = statistics.median(m["images_per_s"] for m in reference)
        ref_cpu = statistics.median(m["cpu_ms_per_image"] for m in reference)
        lines += [
            f"### {workers} loader workers ({rounds} rounds)",
            "",
            "| step | images/s | CPU ms / image | ratio (wall) | ratio (CPU) |",
            "|---|---|---|---|---|",
            f"| plain torchvision reference preset (original JPEGs) | {ref_rate:.0f} | {ref_cpu:.2f} | 1.00 | 1.00 |",
        ]
        if REFERENCE_NEAREST in by_name:
            old = by_name[REFERENCE_NEAREST]
            wall, cpu = (
                _median_ratio(old, reference, "images_per_s", invert=False),
                _median_ratio(old, reference, "cpu_ms_per_image", invert=True),
            )
            rate, cpu_ms = (
                statistics.median(m["images_per_s"] for m in old),
                statistics.median(m["cpu_ms_per_image"] for m in old),
            )
            lines.append(
                f"| former reference: TrivialAugmentWide nearest (less work) | {rate:.0f} | {cpu_ms:.2f} | {wall[0]:.2f} [{wall[1]:.2f}-{wall[2]:.2f}] | {cpu[0]:.2f} [{cpu[1]:.2f}-{cpu[2]:.2f}] |"
            )
        for name, step in ALL_STEPS.items():
            if name not in by_name:
                continue
            ours = by_name[name]
            wall = _median_ratio(ours, reference, "images_per_s", invert=False)
            cpu = _median_ratio(ours, reference, "cpu_ms_per_image", invert=True)
            rate = statistics.median(m["images_per_s"] for m in ours)
            cpu_ms = statistics.median(m["cpu_ms_per_image"] for m in ours)
            lines.append(
                f"| {step.label} | {rate:.0f} | {cpu_ms:.2f} | **{wall[0]:.2f}** [{wall[1]:.2f}-{wall[2]:.2f}] | {cpu[0]:.2f} [{cpu[1]:.2f}-{cpu[2]:.2f}] |"
            )
        final = by_name.get("simplejpeg")
        if final and REFERENCE_NEAREST in by_name:
            wall = _median_ratio(final, by_name[REFERENCE_NEAREST], "images_per_s", invert=False)
            cpu = _median_ratio(final, by_name[REFERENCE_NEAREST], "cpu_ms_per_image", invert=True)
            lines += [
                "",
                f"All steps against the former reference (TrivialAugmentWide nearest): **{wall[0]:.2f}** [{wall[1]:.2f}-{wall[2]:.2f}] wall, {cpu[0]:.2f} [{cpu[1]:.2f}-{cpu[2]:.2f}] CPU.",
            ]
        lines.append("")
    return "\n".join(lines)
