"""Data: prepare-imagenet (checked, idempotent, resumable, lossless), shards round trip, skipping corrupt images."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("webdataset")

from vision_backbones.cli import data as data_cli
from vision_backbones.train import imagenet_val
from vision_backbones.train.datamodule import ImageDataModule
from vision_backbones.train.datasets import ImageFolderDataset
from vision_backbones.train.image_storage import write_shards
from vision_backbones.train.imagenet_val import PrepareError, prepare_imagenet_val
from vision_backbones.train.sampler import ResumableSampler
from vision_backbones.train.samples import write_class_folders
from vision_backbones.train.transforms import TrainTransform

WNIDS = ["n01440764", "n01443537", "n01484850"]


def make_flat_val(tmp_path: Path, n: int = 9) -> tuple[Path, Path, dict[str, bytes]]:
    val = tmp_path / "val"
    val.mkdir()
    rows, contents = ["ImageId,PredictionString"], {}
    for i in range(n):
        image_id = f"ILSVRC2012_val_{i + 1:08d}"
        wnid = WNIDS[i % 3]
        data = f"image {i}".encode() * (i + 1)
        (val / f"{image_id}.JPEG").write_bytes(data)
        contents[f"{wnid}/{image_id}.JPEG"] = data
        rows.append(f"{image_id},{wnid} 1 2 30 40 {wnid} 5 6 70 80 ")
    (val / "README.txt").write_text("not an image in the CSV")
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv, val, contents


def tree(val: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(val)): p.read_bytes()
        for p in sorted(val.rglob("*"))
        if p.is_file() and p.name != "README.txt"
    }


def test_prepare_imagenet_sorts_and_is_idempotent(tmp_path):
    csv, val, contents = make_flat_val(tmp_path)
    summary = prepare_imagenet_val(csv, val)
    assert (summary.moved, summary.already_sorted, summary.classes) == (9, 0, 3)
    assert summary.untouched == ["README.txt"]
    assert tree(val) == contents
    again = prepare_imagenet_val(csv, val)
    assert (again.moved, again.already_sorted) == (0, 9)
    assert tree(val) == contents and (val / "README.txt").exists()
    assert data_cli.main(["prepare-imagenet", "--val-solution", str(csv), "--val-dir", str(val)]) == 0


@pytest.mark.parametrize("where", ["link", "unlink", "mkdir"])
def test_prepare_imagenet_interrupted_anywhere_loses_nothing(tmp_path, monkeypatch, where):
    csv, val, contents = make_flat_val(tmp_path)
    original = {"link": imagenet_val.os.link, "unlink": imagenet_val.os.unlink, "mkdir": Path.mkdir}
    for stop_after in range(10):
        work = tmp_path / f"run_{where}_{stop_after}"
        work.mkdir()
        csv_k, val_k, _ = make_flat_val(work)
        calls = {"n": 0}

        def interrupt(*args, _name=where, **kwargs):
            calls["n"] += 1
            if calls["n"] > stop_after:
                raise KeyboardInterrupt  # the process dies here
            return original[_name](*args, **kwargs)

        with monkeypatch.context() as patch:
            if where == "mkdir":
                patch.setattr(imagenet_val.Path, "mkdir", lambda self, *a, **k: interrupt(self, *a, **k))
            else:
                patch.setattr(imagenet_val.os, where, interrupt)
            with contextlib.suppress(KeyboardInterrupt):
                prepare_imagenet_val(csv_k, val_k)
        # every image is somewhere, byte for byte, and re-running finishes the job
        present = {p.name: p.read_bytes() for p in val_k.rglob("*.JPEG")}
        assert {Path(k).name: v for k, v in contents.items()} == present
        prepare_imagenet_val(csv_k, val_k)
        assert tree(val_k) == contents


def test_prepare_imagenet_clear_errors_and_nothing_moved(tmp_path):
    csv, val, _ = make_flat_val(tmp_path)
    before = tree(val)
    (val / "ILSVRC2012_val_00000004.JPEG").unlink()
    with pytest.raises(PrepareError, match=r"1 images .* ILSVRC2012_val_00000004.JPEG; nothing was moved"):
        prepare_imagenet_val(csv, val)
    assert len(tree(val)) == len(before) - 1 and not any(p.is_dir() for p in val.iterdir())
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 3\n")
    with pytest.raises(PrepareError, match=r"bad.csv:2: PredictionString"):
        prepare_imagenet_val(bad, val)
    bad.write_text("Id,Label\n")
    with pytest.raises(PrepareError, match=r"bad.csv:1: expected the header"):
        prepare_imagenet_val(bad, val)
    bad.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,dog 1 2 3 4\n")
    with pytest.raises(PrepareError, match=r"bad.csv:2: 'dog' is not a WordNet id"):
        prepare_imagenet_val(bad, val)
    assert data_cli.main(["prepare-imagenet", "--val-solution", str(bad), "--val-dir", str(val)]) == 2


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()


def test_shards_round_trip(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=3, per_class=5, size=(40, 36))
    write_class_folders(root / "val", classes=3, per_class=3, size=(40, 36), fmt="PNG", seed=1)
    out = tmp_path / "shards"
    assert data_cli.main(["shard", "--root", str(root), "--out", str(out), "--max-count", "4"]) == 0
    meta_train = write_shards(root, out, split="train", max_count=4, force=True)  # the CLI wrote them already
    assert meta_train["num_samples"] == 15 and len(meta_train["shards"]) == 4
    common = dict(batch_size=4, num_workers=0, val_resize_size=32, val_crop_size=32, train_crop_size=32)
    folders = ImageDataModule(str(root), **common)
    shards = ImageDataModule(
        train_shards=str(out / "train-{000000..000003}.tar"), val_shards=str(out / "val-{000000..000002}.tar"), **common
    )
    assert shards.num_classes == folders.num_classes == 3

    # validation (deterministic transforms): the same (image, label) pairs
    def pairs(loader):
        return sorted((_digest(x), int(y)) for images, labels, _ in loader for x, y in zip(images, labels))

    assert pairs(shards.val_dataloader()) == pairs(folders.val_dataloader())
    # training: every sample once per epoch, labels preserved
    train_labels = sorted(int(y) for _, labels, _ in shards.train_dataloader() for y in labels)
    assert train_labels == sorted(label for _, label in ImageFolderDataset(root / "train", lambda im: im).samples)
    assert shards.train_batches_per_epoch() == 4


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=2, per_class=3)
    write_class_folders(root / "val", classes=2, per_class=1)
    (root / "train" / "class_000" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    module = ImageDataModule(str(root), batch_size=8, num_workers=0, train_crop_size=32)
    images, labels, skipped = next(iter(module.train_dataloader()))
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.uint8 and len(labels) == 6
    assert int(skipped) == 1
    assert "broken.jpg" in caplog.text


def test_jpeg_draft_decoding_keeps_the_output_size_and_content(tmp_path):
    from PIL import Image

    (path,) = write_class_folders(tmp_path, classes=1, per_class=1, size=(640, 480))
    for draft in (True, False):
        transform = TrainTransform(
            64, scale=(0.05, 0.1), auto_augment="none", random_erase_prob=0.0, hflip_prob=0.0, draft=draft
        )
        torch.manual_seed(0)
        with Image.open(path) as image:
            out = transform(image)
            if draft:
                assert image.size[0] < 640  # decoded at reduced size
        assert out.shape == (3, 64, 64)
        if draft:
            drafted = out.float()
        else:
            assert (drafted - out.float()).abs().mean() < 12  # the same region of the picture


def test_sampler_splits_ranks_and_resumes():
    single = list(ResumableSampler(10, shuffle=True, seed=3, with_seeds=False))
    ranks = [list(ResumableSampler(10, shuffle=True, seed=3, rank=r, world_size=2, with_seeds=False)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(single)
    assert single[:4] == [ranks[0][0], ranks[1][0], ranks[0][1], ranks[1][1]]
    resumed = ResumableSampler(10, shuffle=True, seed=3, with_seeds=False)
    resumed.resume(epoch=0, samples_done=6)
    assert list(resumed) == single[6:]
    assert list(resumed) == single  # the skip applies once
    finished = ResumableSampler(10, shuffle=True, seed=3, with_seeds=False)
    finished.resume(epoch=0, samples_done=10)
    assert finished.epoch == 1


@pytest.mark.parametrize("decoder", ["simplejpeg", "pillow"])
def test_training_epoch_is_the_same_with_or_without_workers(tmp_path, decoder):
    pytest.importorskip(decoder if decoder == "simplejpeg" else "PIL")
    root = tmp_path / "data"
    write_class_folders(root / "train", classes=2, per_class=4, size=(120, 90))
    write_class_folders(root / "val", classes=2, per_class=1, size=(120, 90))
    epochs = []
    for workers in (0, 2):
        module = ImageDataModule(
            str(root),
            batch_size=3,
            num_workers=workers,
            persistent_workers=False,
            train_crop_size=32,
            decoder=decoder,
            seed=5,
        )
        epochs.append([(images.clone(), labels.clone()) for images, labels, _ in module.train_dataloader()])
    assert len(epochs[0]) == len(epochs[1]) == 3
    for (a, la), (b, lb) in zip(*epochs):
        assert torch.equal(a, b) and torch.equal(la, lb)
