"""Small image trees made from pictures that ship with scikit-learn (no download): tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sample_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled 427x640 RGB photos (china.jpg, flower.jpg)."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


def write_class_folders(
    root: str | Path,
    *,
    classes: int = 3,
    per_class: int = 4,
    size: tuple[int, int] | None = (48, 40),
    sizes: list[tuple[int, int]] | None = None,
    fmt: str = "JPEG",
    seed: int = 0,
    quality: int = 90,
) -> list[Path]:
    """``root/<class_k>/<i>.jpg`` crops of the sample photos, resized to ``size`` (or a random pick of ``sizes``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = sample_photos()
    root = Path(root)
    suffix = {"JPEG": ".jpg", "PNG": ".png"}[fmt]
    written = []
    for c in range(classes):
        folder = root / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            photo = photos[(c + i) % len(photos)]
            h, w = photo.shape[:2]
            ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            image = Image.fromarray(photo[top : top + ch, left : left + cw])
            target = sizes[int(rng.integers(len(sizes)))] if sizes else size
            if target is not None:
                image = image.resize(target, Image.Resampling.BILINEAR)
            path = folder / f"{i:05d}{suffix}"
            image.save(path, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
            written.append(path)
    return written


# the colour photographs scikit-image ships (no download); grey ones are stored as RGB like ImageNet's few grey images
SKIMAGE_COLOR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
SKIMAGE_GRAY_PHOTOS = ("camera", "coins", "moon", "clock", "brick", "grass", "gravel", "cell")
# ImageNet-like sizes: most ImageNet photos are about 500x375 or 500x333, a few up to 800x600
IMAGENET_LIKE_SIZES = ((500, 375), (500, 333), (375, 500), (333, 500), (500, 400), (640, 480), (600, 450), (800, 600))


def benchmark_photos() -> list[np.ndarray]:
    """Real photographs, RGB ``uint8``: scikit-image's (colour, the stereo pair, grey) and scikit-learn's two."""
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in SKIMAGE_COLOR_PHOTOS]
    left, right, _ = skimage.data.stereo_motorcycle()
    photos += [left, right]
    photos += [np.repeat(getattr(skimage.data, name)()[..., None], 3, axis=2) for name in SKIMAGE_GRAY_PHOTOS]
    photos += sample_photos()
    return [np.ascontiguousarray(photo[..., :3]) for photo in photos]


def write_benchmark_folders(
    root: str | Path,
    *,
    classes: int = 8,
    per_class: int = 40,
    sizes: tuple[tuple[int, int], ...] = IMAGENET_LIKE_SIZES,
    quality: int = 90,
    seed: int = 0,
) -> list[Path]:
    """``root/<class_k>/<i>.jpg``: crops of :func:`benchmark_photos` at ImageNet-like sizes, JPEG ``quality``; deterministic.

    Each file is a random crop of a random photo with the target's aspect ratio (60-100 % of the
    largest such crop), resized to the target size with antialiasing, so small photos are
    enlarged (smoother than a camera's output: they decode a little faster than real ImageNet
    JPEGs of the same size).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = benchmark_photos()
    root = Path(root)
    written = []
    for c in range(classes):
        folder = root / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            photo = photos[int(rng.integers(len(photos)))]
            width, height = sizes[int(rng.integers(len(sizes)))]
            h, w = photo.shape[:2]
            fit = min(w / width, h / height) * float(rng.uniform(0.6, 1.0))
            cw, ch = max(1, int(width * fit)), max(1, int(height * fit))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            image = Image.fromarray(photo[top : top + ch, left : left + cw]).resize(
                (width, height), Image.Resampling.BILINEAR, reducing_gap=None
            )
            path = folder / f"{i:05d}.jpg"
            image.save(path, "JPEG", quality=quality)
            written.append(path)
    return written
