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
                image = image.resize(target, Image.BILINEAR)
            path = folder / f"{i:05d}{suffix}"
            image.save(path, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
            written.append(path)
    return written
