"""The profiler (``backbones profile``), the ``measure`` package and the side-by-side benchmark's ratio logic.

Speed is never asserted.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import leftover_temp_files
from torch import nn

from vision_backbones.cli.profile import main
from vision_backbones.measure import machine
from vision_backbones.measure.memory import LiveActivationMemory, SavedForBackward
from vision_backbones.measure.profile import profile_model
from vision_backbones.measure.profile_plot import write_plot
from vision_backbones.measure.references import build_pair, build_reference
from vision_backbones.measure.timing import interleaved_times, ratio_summary, summarize
from vision_backbones.pareto import pareto_front
from vision_backbones.registry import model_info

ROOT = Path(__file__).resolve().parents[1]
SMALL = "mobilenet_v3_small"
SIZE = 32  # the smallest input mobilenet_v3_small takes: keeps every test here fast
FAST = [
    "--image-size",
    str(SIZE),
    "--batch-size",
    "2",
    "--throughput-batch",
    "2",
    "--repeats",
    "2",
    "--warmup",
    "0",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def profiled() -> dict:
    return profile_model(SMALL, image_size=SIZE, batch_size=2, throughput_batch=2, repeats=2, warmup=0, threads=1)


def test_profile_counts_match_model_info(profiled: dict) -> None:
    info = model_info(SMALL, image_size=SIZE)
    assert profiled["params"] == info["params"]
    assert profiled["params_with_head"] > profiled["params"]
    assert profiled["flops"] == info["flops"]
    assert profiled["flops_2x_macs"] == info["flops_2x_macs"]
    assert len(profiled["level_flops"]) == len(profiled["level_flops_2x_macs"]) == len(info["strides"])
    assert sum(profiled["level_flops"]) == profiled["flops"] - profiled["stem_flops"]
    assert all(f > 0 for f in profiled["level_flops"])
    assert sum(profiled["level_flops_2x_macs"]) <= profiled["flops_2x_macs"]


def test_profile_memory_and_timings_are_sane(profiled: dict) -> None:
    assert profiled["eval_activation_bytes"] > 0
    assert profiled["train_error"] is None
    assert profiled["train_saved_bytes"] >= profiled["eval_activation_bytes"]
    for prefix, unit in (
        ("eval_latency", "ms"),
        ("eval_throughput", "ips"),
        ("train_latency", "ms"),
        ("train_throughput", "ips"),
    ):
        median = profiled[f"{prefix}_{unit}"]
        assert median > 0
        assert (
            profiled[f"{prefix}_min_{unit}"]
            <= profiled[f"{prefix}_q1_{unit}"]
            <= median
            <= profiled[f"{prefix}_q3_{unit}"]
            <= profiled[f"{prefix}_max_{unit}"]
        )
    assert profiled["threads"] == 1 and profiled["dtype"] == "fp32"
    assert profiled["cpu"] == machine.cpu_model() and profiled["isa"] == machine.isa_flags()  # the machine is recorded


def test_machine_reads_cpu_model_and_isa_flags() -> None:
    lscpu = [
        "Architecture:  x86_64",
        "Model name:    Intel(R) Xeon(R) Platinum 8480+",
        "Flags:  fpu sse4_2 avx2 avx512f amx_bf16 amx_tile",
    ]
    cpuinfo = [
        "processor\t: 0",
        "model name\t: AMD EPYC 9654",
        "flags\t\t: fma avx2",
        "",
        "processor\t: 1",
        "model name\t: other",
    ]
    keys = {"model name": "model", "flags": "flags", "features": "flags"}
    assert machine._parse(lscpu, keys) == {
        "model": "Intel(R) Xeon(R) Platinum 8480+",
        "flags": "fpu sse4_2 avx2 avx512f amx_bf16 amx_tile",
    }
    assert machine._parse(cpuinfo, keys) == {"model": "AMD EPYC 9654", "flags": "fma avx2"}  # the first CPU's
    info = machine.machine_info(packages=())
    assert info["cpu"] and set(info["isa"]) <= set(machine.ISA_FLAGS) and info["versions"]["torch"] == torch.__version__
    assert info["cpu"] in machine.describe(info) and info["torch_cpu_capability"] in machine.describe(info)
    assert "ISA: none reported" in machine.describe(
        {"cpu": "x", "logical_cores": 1, "affinity_cores": 1}
    )  # an old results.json


def test_reference_builder_is_seeded_and_pairs_share_weights() -> None:
    first, again = (
        build_reference("torchvision", "mobilenet_v3_small"),
        build_reference("torchvision", "mobilenet_v3_small"),
    )
    assert not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    norm = next(m for m in first.modules() if isinstance(m, nn.BatchNorm2d))
    assert (
        norm.running_var.min() >= 0.5 and norm.weight.min() >= 0.25 and norm.weight.max() <= 0.75
    )  # randomized statistics
    ours, theirs = build_pair("torchvision", "mobilenet_v3_small")
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="unknown reference library 'keras'; expected one of torchvision, timm"):
        build_reference("keras", "resnet50")


def test_memory_trackers_count_exact_bytes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    x = torch.randn(1, 3, 16, 16)
    activation = 8 * 16 * 16 * 4  # one fp32 map of the conv's output
    weights = list(model.parameters())
    with torch.no_grad(), LiveActivationMemory(ignore=[*weights, x]) as tracker:
        model(x)
    assert tracker.peak == 2 * activation  # the conv output is alive while ReLU writes its own
    with SavedForBackward(ignore=[*weights, x]) as saved:
        model(x)
    assert saved.bytes == activation  # ReLU saves its output; the conv saves only input and weight


def test_profile_bf16_channels_last_runs_without_speed() -> None:
    result = profile_model(SMALL, image_size=SIZE, batch_size=2, dtype="bf16", channels_last=True, speed=False)
    assert result["eval_latency_ms"] is None and result["eval_activation_bytes"] > 0


def test_summarize_and_pareto() -> None:
    stats = summarize([3.0, 1.0, 2.0, 4.0])
    assert stats["median"] == 2.5 and stats["min"] == 1.0 and stats["max"] == 4.0 and stats["q1"] <= stats["q3"]
    # (latency, top-1): the 3rd is beaten by the 2nd (slower and worse)
    assert pareto_front([(1.0, 70.0), (2.0, 76.0), (3.0, 75.0), (4.0, 78.0)], maximize_y=True) == [0, 1, 3]


def test_cli_writes_csv_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vision_backbones.published import Published
    from vision_backbones.registry import get_entry

    other = "shufflenet_v2_x0_5"
    # two models with a top-1 (declared by their families): the accuracy panel is drawn
    monkeypatch.setitem(get_entry(SMALL).info.published, SMALL, Published(top1=67.7))
    monkeypatch.setitem(get_entry(other).info.published, other, Published(top1=60.6))
    out_csv, out_json, out_png = tmp_path / "p.csv", tmp_path / "p.json", tmp_path / "p.png"
    code = main([SMALL, other, *FAST, "--csv", str(out_csv), "--json", str(out_json), "--plot", str(out_png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert SMALL in printed and other in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["name"] for r in rows] == [SMALL, other]
    assert float(rows[0]["eval_latency_ms"]) > 0
    data = json.loads(out_json.read_text())
    assert data[0]["published_top1"] == pytest.approx(67.7) and data[1]["published_top1"] == pytest.approx(60.6)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftover_temp_files(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert out_csv.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_plot_without_top1_draws_throughput(tmp_path: Path) -> None:
    def fake(name: str, gflops: float, ms: float, top1: float | None) -> dict:
        row = {
            "name": name,
            "flops": gflops * 1e9,
            "params": 5e6,
            "image_size": 224,
            "batch_size": 1,
            "throughput_batch": 16,
            "dtype": "fp32",
            "threads": 2,
            "channels_last": False,
            "published_top1": top1,
            "eval_throughput_ips": 1e3 / ms,
            "train_throughput_ips": 300 / ms,
        }
        row.update({f"eval_latency{k}_ms": ms for k in ("", "_q1", "_q3")})
        return row

    out = write_plot(
        [fake("a", 1.0, 10.0, 75.0), fake("b", 4.0, 20.0, None), fake("c", 2.0, 30.0, None)], tmp_path / "p.png"
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="nothing to plot"):
        write_plot([{**fake("a", 1.0, 10.0, None), "eval_latency_ms": None}], tmp_path / "q.png")
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_cli_bad_name_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resnet5", "--no-speed"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "resnet5" in err and "did you mean" in err
    assert main(["resnet18", "--image-size", "8", "--no-speed"]) == 2  # checked before any measuring
    assert "at least 32x32" in capsys.readouterr().err


# ------------------------------------------------------------------------------ benchmarks/compare.py


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def test_ratio_and_verdict(compare) -> None:
    summary = ratio_summary([2.0, 3.0, 4.0], [2.0, 2.0, 2.0])
    assert summary["median"] == 1.5 and summary["min"] == 1.0 and summary["max"] == 2.0
    assert compare.verdict(ratio_summary([1.2, 1.3, 1.25], [1.0, 1.0, 1.0])) == "slower"
    assert compare.verdict(ratio_summary([0.8, 0.9, 0.85], [1.0, 1.0, 1.0])) == "faster"
    assert compare.verdict(ratio_summary([0.9, 1.2, 1.05], [1.0, 1.0, 1.0])) == "same"  # spread straddles 1
    with pytest.raises(ValueError, match="need equal, non-empty round lists, got 1 and 2"):
        ratio_summary([1.0], [1.0, 2.0])


def test_interleaved_rounds_rotate_order() -> None:
    calls: list[str] = []
    functions = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = interleaved_times(functions, rounds=4, warmup=1, min_time=0.0)
    assert times["inner"] == 1
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after one warm-up call each
    assert all(len(v) == 4 for v in times["wall"].values())


def test_compare_tiny_case_writes_results(compare, tmp_path: Path) -> None:
    output, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"
    argv = [
        "--filter",
        "torchvision:mobilenet_v3_small",
        "--image-size",
        "32",
        "--batch",
        "2",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--warmup",
        "0",
        "--min-time",
        "0",
        "--output",
        str(output),
        "--json",
        str(raw),
        "--analysis",
        str(tmp_path / "none.md"),
    ]
    assert compare.main(argv) == 0
    text = output.read_text()
    assert "| torchvision | mobilenet_v3_small | mobilenet_v3_small |" in text
    assert "no GPU was lent" in text and "1 intra-op thread" in text
    assert f"- CPU: {machine.cpu_model()} (ISA: " in text  # the machine is recorded
    (row,) = json.loads(raw.read_text())["rows"]
    assert row["eval"]["max_abs_diff"] <= 1e-4  # same weights
    for ratio in (
        row["eval"]["ratio"],
        row["train"]["ratio"],
        row["deploy"]["fused"]["ratio"],
        row["deploy"]["ort"]["ratio"],
    ):
        assert ratio["n"] == 1 and ratio["median"] > 0
    assert row["deploy"]["ort_max_abs_diff"] <= 1e-4
    assert leftover_temp_files(tmp_path) == []
    # Re-rendering from the JSON (after editing the analysis notes) gives the same tables.
    notes = tmp_path / "notes.md"
    notes.write_text("hand-written analysis")
    again = tmp_path / "again.md"
    assert compare.main(["--from-json", str(raw), "--output", str(again), "--analysis", str(notes)]) == 0
    assert again.read_text().startswith(text.split("## Eager")[0].split("Generated")[0])
    assert (
        "| torchvision | mobilenet_v3_small | mobilenet_v3_small |" in again.read_text()
        and "hand-written analysis" in again.read_text()
    )


def test_report_sections_are_replaced_in_place(tmp_path) -> None:
    from vision_backbones.measure.report import read_section, replace_section

    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nintro\n")
    replace_section(path, "deploy", "| a |\n")
    replace_section(path, "pipeline", "pipe 1")
    replace_section(path, "deploy", "| b |")
    text = path.read_text()
    assert text.startswith("# Results\n\nintro\n") and text.count("BEGIN deploy") == 1
    assert read_section(path, "deploy") == "| b |" and read_section(path, "pipeline") == "pipe 1"
    assert text.index("BEGIN deploy") < text.index("BEGIN pipeline")
    with pytest.raises(ValueError, match="section name 'Bad Name'"):
        replace_section(path, "Bad Name", "x")
