"""Images/s of the training input pipeline vs a plain torchvision ImageFolder + transforms.v2 pipeline.

    python -m vision_backbones.train.bench_pipeline [--images 400] [--workers 0] [--repeats 2]

Both read the same JPEGs (cut from scikit-learn's two sample photos at ImageNet-like sizes) with the
same augmentations (RandomResizedCrop 176, flip, TrivialAugmentWide, RandomErasing 0.1) and produce
normalized float batches. The baseline is torchvision's reference preset (PIL transforms, then
ToDtype/Normalize/RandomErasing in the workers); ours decodes JPEGs in draft mode at the size the
crop needs, crops/resizes uint8 tensors and normalizes the batch after collation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vision_backbones.measure.machine import describe, machine_info
from vision_backbones.train.transforms import IMAGENET_MEAN, IMAGENET_STD

# ImageNet-like sizes (most ImageNet photos are about 500x375; some are much larger)
SIZES = [(500, 375), (500, 333), (375, 500), (500, 400), (640, 480), (800, 600), (1024, 768)]


def plain_torchvision_loader(root: Path, batch_size: int, workers: int):
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.RandomResizedCrop(176, antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.TrivialAugmentWide(),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
            v2.RandomErasing(0.1),
        ]
    )
    dataset = ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers), lambda batch: batch


def our_loader(root: Path, batch_size: int, workers: int):
    from vision_backbones.train.datamodule import ImageDataModule

    module = ImageDataModule(str(root.parent), batch_size=batch_size, num_workers=workers, persistent_workers=False)
    return module.train_dataloader(), lambda batch: module.on_after_batch_transfer(batch, 0)


def measure(make, root: Path, batch_size: int, workers: int) -> float:
    loader, finish = make(root, batch_size, workers)
    count = 0
    start = time.perf_counter()
    for batch in loader:
        images = finish(batch)[0]
        count += len(images)
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, default=0, help="loader processes (0: measure in this process)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from vision_backbones.train.samples import write_class_folders

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "train"
        write_class_folders(root, classes=8, per_class=max(1, args.images // 8), size=None, sizes=SIZES, quality=90)
        (Path(tmp) / "val").mkdir()
        (Path(tmp) / "val" / "class_000").mkdir()
        results: dict[str, list[float]] = {"torchvision ImageFolder + v2": [], "vision_backbones pipeline": []}
        for _ in range(args.repeats):  # interleaved, best of: the machine may be shared
            results["torchvision ImageFolder + v2"].append(measure(plain_torchvision_loader, root, args.batch_size, args.workers))
            results["vision_backbones pipeline"].append(measure(our_loader, root, args.batch_size, args.workers))
    best = {name: max(values) for name, values in results.items()}
    base, ours = best["torchvision ImageFolder + v2"], best["vision_backbones pipeline"]
    print(f"{args.images} JPEGs ({', '.join(f'{w}x{h}' for w, h in SIZES)}), batch {args.batch_size}, {args.workers} workers")
    print(f"machine: {describe(machine_info(packages=('torchvision', 'PIL')))}")
    for name, value in best.items():
        print(f"  {name:32s} {value:8.1f} images/s")
    print(f"  speed-up                         {ours / base:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
