"""The utilities every tool shares: figure saving, the Pareto front, call timing, JSON with tuples."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from vision_backbones.io import append_jsonl, read_json, read_jsonl, write_json, write_jsonl
from vision_backbones.measure.timing import time_calls
from vision_backbones.pareto import hypervolume, pareto_front
from vision_backbones.plots import pyplot, save_figure


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(figure.number)
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]  # no temporary file left


def test_save_figure_refuses_other_suffixes_and_still_closes(tmp_path: Path) -> None:
    plt = pyplot()
    figure, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"expected a \.png figure path, got '.*chart\.jpg'"):
        save_figure(figure, tmp_path / "chart.jpg")
    assert not plt.fignum_exists(figure.number)
    assert not list(tmp_path.iterdir())


def test_save_figure_closes_the_figure_when_drawing_fails(tmp_path: Path) -> None:
    plt = pyplot()
    figure, _ = plt.subplots()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer failed")

    figure.savefig = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="renderer failed"):
        save_figure(figure, tmp_path / "chart.png")
    assert not plt.fignum_exists(figure.number)
    assert not list(tmp_path.iterdir())


def test_pareto_front_in_every_direction() -> None:
    latency_accuracy = [(1.0, 90.0), (2.0, 95.0), (3.0, 94.0), (0.5, 80.0), (2.0, 91.0), (2.0, 95.0)]
    assert pareto_front(latency_accuracy) == [3, 0, 1]  # the later duplicate of (2, 95) is left out
    # more compute (x) in less time (y) is better: (4, 1) beats every other point
    assert pareto_front([(1.0, 5.0), (2.0, 6.0), (4.0, 1.0)], maximize_x=True, maximize_y=False) == [2]
    assert pareto_front([(1.0, 5.0), (2.0, 3.0), (3.0, 1.0)], maximize_y=False) == [0, 1, 2]
    assert pareto_front([]) == []


def test_hypervolume_is_the_area_dominated_inside_the_reference_box() -> None:
    reference = (50.0, 30.0)  # worst accuracy, worst latency
    # one point: (30 - 10) ms x (90 - 50) points
    assert hypervolume([(90.0, 10.0)], reference) == 800.0
    # a faster, less accurate point adds the part of its box the first does not cover: (10 - 5) x (70 - 50)
    assert hypervolume([(90.0, 10.0), (70.0, 5.0)], reference) == 900.0
    # a dominated point and points outside the box add nothing
    assert hypervolume([(90.0, 10.0), (80.0, 20.0), (40.0, 1.0), (99.0, 31.0)], reference) == 800.0
    assert hypervolume([], reference) == 0.0


def test_time_calls_returns_milliseconds_per_call() -> None:
    calls = []
    times = time_calls(lambda: (calls.append(1), time.sleep(0.02)), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3
    assert all(15.0 < ms < 500.0 for ms in times)
    # a sleeping process uses almost no CPU time
    assert all(ms < 15.0 for ms in time_calls(lambda: time.sleep(0.02), repeats=2, warmup=0, clock="cpu"))


def test_time_calls_sets_and_restores_threads() -> None:
    before = torch.get_num_threads()
    seen = []
    time_calls(lambda: seen.append(torch.get_num_threads()), repeats=1, warmup=1, threads=1)
    assert seen == [1, 1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="clock must be one of"):
        time_calls(lambda: None, repeats=1, warmup=0, clock="gpu")
    with pytest.raises(ValueError, match="need repeats >= 1"):
        time_calls(lambda: None, repeats=0, warmup=0)


def test_json_keeps_tuples_on_request(tmp_path: Path) -> None:
    value = {"depths": (2, 2), "rows": ((1, 16), (6, 24)), "name": "resnet18"}
    path = write_json(tmp_path / "a.json", value)
    assert path.read_text().endswith("\n")
    assert read_json(path) == {"depths": [2, 2], "rows": [[1, 16], [6, 24]], "name": "resnet18"}
    assert read_json(path, tuples=True) == value


def test_jsonl_append_and_corrupt_lines_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    assert read_jsonl(path) == []
    append_jsonl(path, {"step": 0, "widths": (8, 16)})
    append_jsonl(path, {"step": 1, "widths": (8, 12)})
    assert read_jsonl(path, tuples=True) == [{"step": 0, "widths": (8, 16)}, {"step": 1, "widths": (8, 12)}]
    assert [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]
    write_jsonl(path, [{"a": 1}, {"a": 2}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text(path.read_text() + '{"a": 3\n')
    with pytest.raises(ValueError, match=r"log\.jsonl' line 3 is not valid JSON"):
        read_jsonl(path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json' is not valid JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not exist"):
        read_json(tmp_path / "missing.json")
