"""The fast input path: simplejpeg decoding (close to Pillow), DCT scaling, downscaled storage, normalization, memory reuse."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("lightning")
pytest.importorskip("webdataset")
pytest.importorskip("skimage")  # the real photographs

from vision_backbones.cli import data as data_cli
from vision_backbones.train.datamodule import ImageDataModule
from vision_backbones.train.datasets import load_sample
from vision_backbones.train.decode import (
    decode_jpeg_scaled,
    jpeg_size,
    pillow_is_simd,
    resolve_decoder,
    scale_divisor,
    simplejpeg_available,
)
from vision_backbones.train.memory import reuse_freed_memory
from vision_backbones.train.samples import IMAGENET_LIKE_SIZES, write_benchmark_folders, write_class_folders
from vision_backbones.train.transforms import EvalTransform, TrainTransform

needs_simplejpeg = pytest.mark.skipif(not simplejpeg_available(), reason="simplejpeg not installed")


def photo_jpeg(size: tuple[int, int] = (500, 375), mode: str = "RGB", quality: int = 90) -> bytes:
    import skimage.data

    image = Image.fromarray(skimage.data.astronaut()).resize(size, Image.BILINEAR)
    out = io.BytesIO()
    image.convert(mode).save(out, "JPEG", quality=quality)
    return out.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@needs_simplejpeg
@pytest.mark.parametrize("divisor", [1, 2, 4])
def test_simplejpeg_decode_is_close_to_pillow(divisor):
    data = photo_jpeg()
    ours = np.asarray(decode_jpeg_scaled(data, jpeg_size(data), divisor).convert("RGB"))
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (500 // divisor, 375 // divisor))  # Pillow divides with floor
        pillow = np.asarray(image.convert("RGB"))
    assert ours.shape == pillow.shape == (math.ceil(375 / divisor), math.ceil(500 / divisor), 3)
    assert psnr(ours, pillow) > 40  # the same libjpeg-turbo arithmetic, up to upsampling/IDCT rounding
    assert np.abs(ours.astype(int) - pillow.astype(int)).mean() < 1.0


def test_scale_divisor_keeps_the_crop_at_least_the_output():
    assert scale_divisor((800, 600), (800, 600), (176, 176)) == 2  # 400x300 still holds 176
    assert scale_divisor((800, 600), (100, 100), (176, 176)) == 1  # a small crop: full resolution
    assert scale_divisor((4000, 3000), (3000, 3000), (176, 176)) == 8
    for size, box in [((500, 375), (360, 353)), ((333, 500), (333, 353)), ((640, 480), (400, 380))]:
        k = scale_divisor(size, box, (176, 176))
        scaled = (math.ceil(size[0] / k), math.ceil(size[1] / k))
        assert box[0] * scaled[0] / size[0] >= 176 and box[1] * scaled[1] / size[1] >= 176


@needs_simplejpeg
def test_train_transform_same_seed_same_crop_with_either_decoder():
    data = photo_jpeg((640, 480))
    outputs = {}
    for decoder in ("simplejpeg", "pillow"):
        transform = TrainTransform(
            64, scale=(0.3, 1.0), auto_augment="none", random_erase_prob=0.0, hflip_prob=0.5, decoder=decoder
        )
        runs = [load_sample(data, transform, seed=seed, what="photo") for seed in (7, 7, 8)]
        assert all(r.shape == (3, 64, 64) and r.dtype == torch.uint8 for r in runs)
        assert torch.equal(runs[0], runs[1])  # deterministic per seed
        outputs[decoder] = runs
    # the same crop and flip from the same seed: only decoder rounding differs
    assert (outputs["simplejpeg"][0].float() - outputs["pillow"][0].float()).abs().mean() < 3
    assert (
        outputs["simplejpeg"][0].float() - outputs["simplejpeg"][2].float()
    ).abs().mean() > 3  # another seed, another crop


@needs_simplejpeg
def test_grey_cmyk_png_and_corrupt_inputs_take_the_fallbacks(caplog):
    transform = TrainTransform(32, decoder="simplejpeg")
    grey = photo_jpeg((120, 100), mode="L")
    assert jpeg_size(grey) == (120, 100)
    cmyk = photo_jpeg((120, 100), mode="CMYK")
    assert jpeg_size(cmyk) is None  # left to Pillow's colour conversion
    png = io.BytesIO()
    Image.new("RGB", (50, 40), (10, 200, 30)).save(png, "PNG")
    for data in (grey, cmyk, png.getvalue()):
        out = load_sample(data, transform, seed=1, what="x")
        assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    assert load_sample(grey[: len(grey) // 3], transform, seed=1, what="truncated.jpg") is None
    assert "truncated.jpg" in caplog.text


def test_decoder_choice_and_pillow_simd_recognised(monkeypatch):
    import PIL

    assert resolve_decoder("pillow") == "pillow"
    assert resolve_decoder("auto") == ("simplejpeg" if simplejpeg_available() else "pillow")
    with pytest.raises(ValueError, match="decoder"):
        resolve_decoder("turbo")
    with pytest.raises(ValueError, match=r"data\.decoder"):
        ImageDataModule("/nonexistent", decoder="nvjpeg")
    monkeypatch.setattr(PIL, "__version__", "9.5.0.post1")
    assert pillow_is_simd()
    monkeypatch.setattr(PIL, "__version__", "13.0.0")
    assert not pillow_is_simd()


def test_resize_storage_round_trip(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=2, per_class=3, size=None, sizes=[(500, 375), (375, 500)])
    write_class_folders(root / "val", classes=2, per_class=1, size=(100, 80), seed=1)  # already small: kept as is
    out = tmp_path / "small"
    assert (
        data_cli.main(["resize", "--root", str(root), "--out", str(out), "--max-side", "128", "--quality", "85"]) == 0
    )
    meta = json.loads((out / "train" / "resize-meta.json").read_text())
    assert (meta["max_side"], meta["quality"], meta["num_samples"], meta["resized"], meta["kept"]) == (128, 85, 6, 6, 0)
    for path in sorted((out / "train").rglob("*.jpg")):
        with Image.open(path) as image:
            assert max(image.size) == 128 and image.size in ((128, 96), (96, 128))
    val_meta = json.loads((out / "val" / "resize-meta.json").read_text())
    assert val_meta["kept"] == 2
    originals = sorted((root / "val").rglob("*.jpg"))
    assert [p.read_bytes() for p in originals] == [p.read_bytes() for p in sorted((out / "val").rglob("*.jpg"))]
    # refused without --force, bad quality is a one-line error
    assert data_cli.main(["resize", "--root", str(root), "--out", str(out), "--max-side", "128"]) == 2
    assert (
        data_cli.main(
            ["resize", "--root", str(root), "--out", str(out), "--max-side", "128", "--quality", "101", "--force"]
        )
        == 2
    )
    module = ImageDataModule(
        str(out), batch_size=4, num_workers=0, train_crop_size=32, val_resize_size=32, val_crop_size=32
    )
    images, labels, skipped = next(iter(module.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and int(skipped) == 0


def test_shards_with_max_side_store_downscaled_images(tmp_path):
    import tarfile

    root = tmp_path / "data"
    write_class_folders(root / "train", classes=2, per_class=3, size=(400, 300))
    out = tmp_path / "shards"
    assert (
        data_cli.main(["shard", "--root", str(root), "--out", str(out), "--splits", "train", "--max-side", "100"]) == 0
    )
    meta = json.loads((out / "train-meta.json").read_text())
    assert (meta["max_side"], meta["quality"], meta["resized"]) == (100, 90, 6)
    with tarfile.open(out / "train-000000.tar") as tar:
        jpegs = [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")]
    assert len(jpegs) == 6 and all(Image.open(io.BytesIO(j)).size == (100, 75) for j in jpegs)


def test_batch_normalization_matches_the_formula():
    module = ImageDataModule(
        train_shards="x-{0..1}.tar",
        val_shards="y-{0..1}.tar",
        num_classes=3,
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
    )
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    out, _, _ = module.on_after_batch_transfer((images, torch.zeros(4), torch.tensor(0)), 0)
    mean, std = (
        torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1) * 255,
        torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1) * 255,
    )
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, (images.float() - mean) / std, atol=1e-5, rtol=1e-5)


def test_reuse_freed_memory_on_glibc():
    import platform

    from PIL import Image as PILImage

    took = reuse_freed_memory()
    assert PILImage.core.get_blocks_max() >= 64
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert took


@needs_simplejpeg
def test_eval_transform_same_output_with_either_decoder():
    data = photo_jpeg((640, 480))
    fast, pillow = (EvalTransform(72, 64, decoder=d)(data) for d in ("simplejpeg", "pillow"))
    assert fast.shape == pillow.shape == (3, 64, 64)
    assert (fast.float() - pillow.float()).abs().mean() < 3


def test_benchmark_photos_are_deterministic_and_imagenet_sized(tmp_path):
    first = write_benchmark_folders(tmp_path / "a", classes=2, per_class=3)
    second = write_benchmark_folders(tmp_path / "b", classes=2, per_class=3)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    for path in first:
        with Image.open(path) as image:
            assert image.size in IMAGENET_LIKE_SIZES and image.mode == "RGB"


def test_benchmark_report_goes_into_its_section(tmp_path):
    from vision_backbones.measure.report import read_section, replace_section
    from vision_backbones.train import bench_pipeline

    data = tmp_path / "bench"
    (data / "max-side-320" / "train").mkdir(parents=True)
    (data / "max-side-320" / "train" / "resize-meta.json").write_text(
        json.dumps({"num_samples": 10, "bytes_in": 500_000, "bytes_out": 170_000})
    )
    one = {"images_per_s": 100.0, "cpu_ms_per_image": 4.0, "images": 10}
    fast = {"images_per_s": 170.0, "cpu_ms_per_image": 2.5, "images": 10}
    results = {"load_start": [1, 1, 1], "load_end": [2, 2, 2], "0": {"reference": [one] * 3, "simplejpeg": [fast] * 3}}
    text = bench_pipeline.report(results, data)
    assert "**1.70** [1.70-1.70]" in text and "1.60 [1.60-1.60]" in text
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n<!-- BEGIN deploy -->\nkeep me\n<!-- END deploy -->\n")
    replace_section(results_md, "pipeline", text)
    assert read_section(results_md, "deploy") == "keep me" and "1.70" in read_section(results_md, "pipeline")
