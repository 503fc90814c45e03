"""Your own images as proxy data: a class folder or WebDataset shards for `backbones search`, the grid and adapt.

A real two-trial search runs on a 3-class RGB folder (and on shards written by the library's own
writer); the trained networks have 3 classes and 3 input channels. Every bad input is one line naming
the value, before anything is written; a folder changed between calls is read again.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vision_backbones.search.data import ProxySplits, proxy_splits
from vision_backbones.search.evaluate import ProxyTask, task_splits

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["search", "--space", "nasbench_resnet", "--strategy", "random", "--trials", "2", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared: small tensors lose nothing
    yield
    torch.set_num_threads(threads)


def make_folder(root: Path, *, classes: int = 3, per_class: int = 12, mode: str = "RGB", seed: int = 0) -> Path:
    """``root/class{c}/{i:02d}.png``: 16x16 seeded noise around a brightness that tells the classes apart."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (16, 16, 3)) + 70 * c + np.array([0, 20, 40])  # channels differ
            Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(root / f"class{c}" / f"{i:02d}.png")
    return root


def make_shards(tmp_path: Path) -> Path:
    """The folder of ``make_folder`` as ``train`` shards of 16 samples (``backbones data shard``'s writer)."""
    from vision_backbones.train.image_storage import write_shards

    make_folder(tmp_path / "source" / "train")
    write_shards(tmp_path / "source", tmp_path / "shards", split="train", max_count=16)
    return tmp_path / "shards"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from vision_backbones.cli import main

    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def check_search(out: Path, data: str) -> None:
    """Two trials with results, each a 3-class, 3-channel network (its parameter count says so)."""
    from vision_backbones import create_model

    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and json.loads((out / "search.json").read_text())["task"]["data"] == data
    for row in rows:
        result = row["result"]
        assert 0 <= result["val_acc1"] <= 100 and result["num_classes"] == 3 and result["in_channels"] == 3
        model = create_model("resnet18", num_classes=3, in_channels=3, **row["architecture"])
        assert result["params"] == sum(p.numel() for p in model.parameters())


def test_search_runs_on_a_class_folder(tmp_path, capsys, monkeypatch) -> None:
    folder = make_folder(tmp_path / "my_images")
    monkeypatch.chdir(tmp_path)  # a relative --data, as typed: recorded as its absolute path
    code, error = run_cli([*SEARCH, "--data", "./my_images", "--out", "out", "--no-progress"], capsys)
    assert code == 0, error
    check_search(tmp_path / "out", str(folder))


def test_search_runs_on_shards(tmp_path, capsys) -> None:
    shards = make_shards(tmp_path)
    code, error = run_cli([*SEARCH, "--data", str(shards), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 0, error
    check_search(tmp_path / "out", str(shards / "train-{000000..000002}.tar"))
    folder = proxy_splits(tmp_path / "source" / "train", image_size=16)
    sharded = proxy_splits(shards / "train-{000000..000002}.tar", image_size=16)
    assert sharded.classes == folder.classes == ("class0", "class1", "class2")
    counts = [torch.bincount(torch.cat([s.train[1], s.val[1], s.test[1]])).tolist() for s in (folder, sharded)]
    assert counts[0] == counts[1] == [12, 12, 12]


def _all_labels(splits: ProxySplits) -> list[set[int]]:
    return [set(split[1].tolist()) for split in (splits.train, splits.val, splits.test)]


def test_splits_are_stratified_seeded_and_normalised_per_channel(tmp_path) -> None:
    splits = proxy_splits(make_folder(tmp_path / "rgb"), image_size=16, seed=0)
    assert splits.sizes() == {"train": 21, "val": 7, "test": 8} and splits.model_kwargs() == {
        "num_classes": 3,
        "in_channels": 3,
    }
    assert _all_labels(splits) == [{0, 1, 2}] * 3  # every class in every split
    mean, std = splits.train[0].mean(dim=(0, 2, 3)), splits.train[0].std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5) and torch.allclose(std, torch.ones(3), atol=1e-3)
    again, other = (
        proxy_splits(tmp_path / "rgb", image_size=16, seed=0),
        proxy_splits(tmp_path / "rgb", image_size=16, seed=1),
    )
    assert torch.equal(again.val[0], splits.val[0]) and not torch.equal(other.val[0], splits.val[0])
    task = task_splits(ProxyTask(data=str(tmp_path / "rgb"), image_size=24))
    assert task.train[0].shape[1:] == (3, 24, 24) and task.num_classes == 3  # the task's image size


def test_grayscale_is_kept_only_when_every_image_is_grayscale(tmp_path) -> None:
    gray = proxy_splits(make_folder(tmp_path / "gray", mode="L"), image_size=16)
    assert gray.in_channels == 1 and gray.train[0].shape[1:] == (1, 16, 16)
    mixed = make_folder(tmp_path / "mixed", mode="L")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(mixed / "class1" / "color.png")
    assert proxy_splits(mixed, image_size=16).in_channels == 3


def test_a_changed_folder_is_read_again(tmp_path) -> None:
    folder = make_folder(tmp_path / "imgs", per_class=10)
    task = ProxyTask(data=str(folder), image_size=16)
    first, first_task = proxy_splits(folder, image_size=16), task_splits(task)
    assert proxy_splits(folder, image_size=16) is first and task_splits(task) is first_task  # unchanged: cached
    make_folder(tmp_path / "more", classes=1, per_class=5, seed=1)
    for image in sorted((tmp_path / "more" / "class0").iterdir()):
        image.rename(folder / "class0" / f"new_{image.name}")
    assert sum(proxy_splits(folder, image_size=16).sizes().values()) == 35
    assert sum(task_splits(task).sizes().values()) == 35
    rewritten = folder / "class1" / "00.png"  # the same name and size, other pixels, a later time
    before = proxy_splits(folder, image_size=16)
    stat = rewritten.stat()
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(rewritten)
    os.utime(rewritten, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = proxy_splits(folder, image_size=16)
    assert after is not before and not torch.equal(after.train[0], before.train[0])


# ---------------------------------------------------------------------------------------------
# bad input: one line naming the value, nothing written


def _missing(tmp_path: Path) -> str:
    return str(tmp_path / "nope")


def _empty(tmp_path: Path) -> str:
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


def _a_file(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("x")
    return str(tmp_path / "notes.txt")


def _flat(tmp_path: Path) -> str:
    make_folder(tmp_path / "flat", classes=1)
    for image in (tmp_path / "flat" / "class0").iterdir():
        image.rename(tmp_path / "flat" / image.name)
    (tmp_path / "flat" / "class0").rmdir()
    return str(tmp_path / "flat")


def _one_class(tmp_path: Path) -> str:
    return str(make_folder(tmp_path / "one", classes=1))


def _few(tmp_path: Path) -> str:
    folder = make_folder(tmp_path / "few")
    for image in sorted((folder / "class1").iterdir())[3:]:
        image.unlink()
    return str(folder)


def _garbage(tmp_path: Path) -> str:
    folder = make_folder(tmp_path / "garbage")
    (folder / "class2" / "05.png").write_bytes(b"not a png at all")
    return str(folder)


def _truncated(tmp_path: Path) -> str:
    folder = make_folder(tmp_path / "truncated")
    image = folder / "class1" / "07.png"
    image.write_bytes(image.read_bytes()[:60])  # the header opens, the pixels are gone
    return str(folder)


def _shard_missing(tmp_path: Path) -> str:
    return str(make_shards(tmp_path) / "train-{000000..000005}.tar")


def _shard_truncated(tmp_path: Path) -> str:
    shard = make_shards(tmp_path) / "train-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    return str(shard.parent)


BAD: list[tuple[str, Callable[[Path], str], list[str]]] = [
    ("missing", _missing, ["--data '{data}' is not mnist or digits and no such path exists; expected an image folder"]),
    ("empty", _empty, ["--data '{data}' is an empty folder; expected an image folder (one subfolder per class)"]),
    ("file", _a_file, ["--data '{data}' is a file, not a folder or a .tar shard"]),
    ("flat", _flat, ["--data '{data}' has no class subfolders"]),
    ("one-class", _one_class, ["--data '{data}' has 1 class ('class0'); expected at least 2 classes"]),
    ("few", _few, ["--data '{data}': class 'class1' has 3 images; expected at least 5 per class"]),
    ("garbage", _garbage, ["--data '{data}': cannot read image '{data}/class2/05.png' (UnidentifiedImageError"]),
    ("truncated", _truncated, ["--data '{data}': cannot read image '{data}/class1/07.png' (OSError"]),
    ("shard-missing", _shard_missing, ["shard '", "train-000003.tar' does not exist"]),
    ("shard-truncated", _shard_truncated, ["train-000001.tar' is", "expected a WebDataset .tar file"]),
]


@pytest.mark.parametrize(("name", "make", "messages"), BAD, ids=[case[0] for case in BAD])
def test_bad_data_is_one_line_naming_it(tmp_path, capsys, name: str, make: Callable[[Path], str], messages) -> None:
    data = make(tmp_path)
    out = tmp_path / "out"
    code, error = run_cli([*SEARCH, "--data", data, "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and error.count("\n") == 1 and data in error, error
    for message in messages:
        assert message.format(data=data) in error, error
    assert not out.exists()  # refused before anything was written
    with pytest.raises(ValueError, match="--data"):  # the same check for every entry point
        proxy_splits(data, image_size=16)


# ---------------------------------------------------------------------------------------------
# the grid and adapt take the same values


def test_every_command_takes_and_documents_the_same_data(tmp_path, capsys) -> None:
    from vision_backbones.budget.grid import check_grid_arguments
    from vision_backbones.budget.netadapt import check_adapt_arguments
    from vision_backbones.budget.proxy_data import load_splits
    from vision_backbones.cli.adapt import build_parser as adapt_parser
    from vision_backbones.cli.search import build_parser as search_parser
    from vision_backbones.search.data import DATA_HELP

    spec = importlib.util.spec_from_file_location("grid_cli", ROOT / "benchmarks" / "budget" / "grid.py")
    assert spec is not None and spec.loader is not None
    grid_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid_cli)
    with pytest.raises(SystemExit):
        grid_cli.main(["--help"])
    helps = [search_parser().format_help(), adapt_parser().format_help(), capsys.readouterr().out]
    for text in helps:
        assert "image folder" in " ".join(text.split()) and "WebDataset shards" in " ".join(text.split())
    assert "WebDataset shards" in DATA_HELP
    folder = make_folder(tmp_path / "imgs")
    check_adapt_arguments("resnet18", 5.0, data=str(folder))
    assert load_splits(str(folder), image_size=16).model_kwargs() == {"num_classes": 3, "in_channels": 3}
    check_grid_arguments("resnet18", tmp_path / "grid", data=str(folder))
    for check in (
        lambda: check_adapt_arguments("resnet18", 5.0, data=str(tmp_path / "nope")),
        lambda: check_grid_arguments("resnet18", tmp_path / "grid", data=str(tmp_path / "nope")),
    ):
        with pytest.raises(ValueError, match="no such path exists"):
            check()


def test_grid_trains_on_a_folder_and_refuses_other_data_on_resume(tmp_path) -> None:
    from vision_backbones import create_model
    from vision_backbones.budget.grid import run_grid

    folder = make_folder(tmp_path / "imgs")
    rows = run_grid("resnet18", tmp_path / "grid", epochs=1, train_images=None, tolerance=0.001, data=str(folder))
    assert len(rows) == 2 and {row["data"] for row in rows} == {str(folder)}
    for row in rows:
        model = create_model("resnet18", num_classes=3, in_channels=3, **row["overrides"])
        assert row["params"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match=r"was trained on --data '.*imgs', not 'digits'"):
        run_grid("resnet18", tmp_path / "grid", epochs=1, train_images=None, tolerance=0.001, data="digits")
