"""The bad-input registry of the design tools (issue 16): ``scale``, ``pick``, ``adapt`` and ``search``.

The contract of ``test_bad_input.py`` (one line naming the bad value and what was expected; API
calls raise ``ValueError``, the CLI exits 2 with one stderr line) plus: a refused command leaves
nothing behind (``{new}`` is a fresh path per case that must still not exist afterwards), and every
case fails before a model is trained or timed (a refused case takes milliseconds, not minutes).

Cases are grouped per tool (``scale`` / ``pick`` / ``adapt`` / ``search``) and by the class of
issue 16 they cover: ``runaway`` (bounds checked before any search or loop), ``silent`` (a wrong
result once returned), ``ugly`` (a raw or misleading message), ``corrupt`` (state read back, named
with what to do), ``leftover`` (a refused run once left a folder).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

from vision_backbones.cli import main as cli_main

CLASSES = ("runaway", "silent", "ugly", "corrupt", "leftover")


@dataclass(frozen=True)
class Case:
    id: str
    tool: str  # scale / pick / adapt / search
    kind: str  # one of CLASSES
    run: Any  # a callable taking the files folder, or a CLI argv ("{f}": the files folder, "{new}": a fresh path)
    expect: Any  # ValueError, or the CLI's exit code
    message: str


# ---------------------------------------------------------------------------------------------
# files: corrupt state, forged caches, an empty image folder (once per module, nothing trained)

PICK_SETTINGS = {"image_size": 32, "threads": 1, "rounds": 1}
# what `backbones search --space nasbench_resnet --trials 3` records, so the CLI resumes these folders too
SEARCH = {
    "space": "nasbench_resnet",
    "strategy": "reinforce",
    "trials": 3,
    "seed": 0,
    "strategy_options": {"preset": "enas"},
    "task": {"data": "mnist", "epochs": 2},
}


def _fake_evaluator(trial: dict) -> dict:
    indices = trial["indices"]
    return {"val_acc1": 50.0 + sum(indices), "latency_ms": 1.0, "params": 1, "flops": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    from vision_backbones.budget.pick import PickSettings
    from vision_backbones.search.runner import SearchConfig, _check_folder, run_search

    folder = tmp_path_factory.mktemp("tools_bad_input")
    (folder / "new").mkdir()
    (folder / "a_file").write_text("not a folder")
    (folder / "a_folder.json").mkdir()
    (folder / "a_folder.png").mkdir()
    (folder / "empty_images").mkdir()
    one_class = folder / "one_class" / "cat"
    one_class.mkdir(parents=True)
    for i in range(12):
        (one_class / f"{i}.png").write_bytes(b"")
    few = folder / "few_images"
    for label in ("a", "b"):
        (few / label).mkdir(parents=True)
        (few / label / "0.png").write_bytes(b"")
    (folder / "only_text" / "a").mkdir(parents=True)
    (folder / "only_text" / "a" / "notes.txt").write_text("x")

    # pick caches under the key of PICK_SETTINGS (the key names this machine)
    key = PickSettings(**PICK_SETTINGS).key()
    forged = {
        "list": [1, 2],
        "entry_list": {key: [1]},
        "row_str": {key: {"resnet18": "fast"}},
        "latency_str": {
            key: {"resnet18": {"name": "resnet18", "flops": 1, "latency_ms": "fast", "status": "measured"}}
        },
        "flops_str": {key: {"resnet18": {"name": "resnet18", "flops": "many", "status": "measured"}}},
        "status_int": {key: {"resnet18": {"name": "resnet18", "flops": 1, "status": 3}}},
        "latency_nan": {key: {"resnet18": {"name": "resnet18", "flops": 1, "latency_ms": float("nan")}}},
        "other_name": {key: {"resnet18": {"name": "alexnet", "flops": 1}}},
    }
    for name, content in forged.items():
        (folder / f"cache_{name}.json").write_text(json.dumps(content))
    (folder / "cache_bad.json").write_text("{not json")
    (folder / "cache_binary.json").write_bytes(b"\xff\xfe\x00garbage")

    # search folders: a real two-trial run (fake evaluator, milliseconds), then broken copies
    config = SearchConfig(**SEARCH)
    good = folder / "search_good"
    run_search(config, good, evaluator=_fake_evaluator, progress=False)
    lines = (good / "trials.jsonl").read_text().splitlines()
    state = (good / "state.pt").read_bytes()
    config_text = (good / "search.json").read_text()

    def search_folder(name: str, **contents: bytes | str) -> None:
        target = folder / name
        target.mkdir()
        (target / "search.json").write_text(config_text)
        for file, data in contents.items():
            path = target / file.replace("_", ".")
            path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)

    search_folder("search_bad_line", trials_jsonl="\n".join([lines[0], "{broken", *lines[2:]]) + "\n", state_pt=state)
    search_folder("search_list_row", trials_jsonl="\n".join([lines[0], "[1, 2]"]) + "\n", state_pt=state)
    search_folder("search_no_number", trials_jsonl=json.dumps({"indices": [0], "result": {}, "reward": 1}) + "\n")
    search_folder(
        "search_bad_reward", trials_jsonl=json.dumps({"number": 0, "indices": [0], "result": {}, "reward": "x"}) + "\n"
    )
    search_folder("search_truncated_state", trials_jsonl="\n".join(lines) + "\n", state_pt=state[: len(state) // 2])
    search_folder("search_empty_state", state_pt=b"")
    buffer = io.BytesIO()
    torch.save([1, 2, 3], buffer)
    search_folder("search_list_state", state_pt=buffer.getvalue())
    buffer = io.BytesIO()
    torch.save({"strategy": {"nonsense": torch.zeros(1)}, "next_trial": 1}, buffer)
    search_folder("search_foreign_state", state_pt=buffer.getvalue())
    (folder / "search_bad_config").mkdir()
    (folder / "search_bad_config" / "search.json").write_text("{oops")
    (folder / "no_trials").mkdir()

    # a one-shot folder whose supernet.pt was cut short
    oneshot = SearchConfig(
        space="mnasnet_oneshot", strategy="oneshot", trials=2, strategy_options={"supernet_epochs": 1}
    )
    _check_folder(_mkdir(folder / "oneshot_truncated"), oneshot)
    (folder / "oneshot_truncated" / "supernet.pt").write_bytes(state[:100])

    # adapt: a state of another run, a truncated state, a finished run
    adapt_other = _mkdir(folder / "adapt_other")
    buffer = io.BytesIO()
    torch.save(
        {
            "identity": {"name": "resnet18", "seed": 99},
            "start_ms": 1.0,
            "target_ms": 0.5,
            "steps": [{}],
            "overrides": {},
            "model": {},
        },
        buffer,
    )
    (adapt_other / "state.pt").write_bytes(buffer.getvalue())
    (_mkdir(folder / "adapt_truncated") / "state.pt").write_bytes(buffer.getvalue()[:50])
    (_mkdir(folder / "adapt_finished") / "arch.json").write_text("{}")
    (_mkdir(folder / "adapt_old_log") / "log.jsonl").write_text("{}\n")
    (_mkdir(folder / "grid_bad_json") / "grid.json").write_text("{oops")
    (_mkdir(folder / "grid_list") / "grid.json").write_text("[1]")
    (_mkdir(folder / "grid_bad_row") / "grid.json").write_text(json.dumps({"1/1/1": {"alpha": 1}}))
    return folder


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------------------------------------
# helpers


def _scale(name: str = "efficientnet_b0", **kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.scaling", fromlist=["x"]).scale_model(name, **kwargs)


def _image_size(*args: Any) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.scaling", fromlist=["x"]).scaled_image_size(*args)


def _multipliers(**kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.scaling", fromlist=["x"]).Multipliers(**kwargs)


def _settings(**kwargs: Any) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.budget.pick", fromlist=["x"]).PickSettings(**kwargs)


def _rank(budget: Any, memory: Any = None) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.budget.pick", fromlist=["x"]).rank({"models": {}}, budget, memory)


def _zoo(names: Any = ("resnet18",), budget: Any = 10.0, cache: str | None = None) -> Callable[[Path], Any]:
    def run(f: Path) -> Any:
        from vision_backbones.budget.pick import PickSettings, measure_zoo

        # the refusal must come before the first measurement (the peak-FLOP/s probe), not after it
        with mock.patch(
            "vision_backbones.budget.pick.peak_gflops_per_second",
            side_effect=AssertionError("refused after timing started"),
        ):
            return measure_zoo(
                list(names) if isinstance(names, tuple) else names,
                budget,
                PickSettings(**PICK_SETTINGS),
                cache=f / cache if cache else None,
            )

    return run


def _adapt_args(**kwargs: Any) -> Callable[[Path], Any]:
    def run(f: Path) -> Any:
        from vision_backbones.budget.netadapt import check_adapt_arguments

        options = {"target_ms": 5.0, **kwargs}
        if isinstance(options.get("data"), str) and options["data"].startswith("{f}"):
            options["data"] = options["data"].replace("{f}", str(f))
        return check_adapt_arguments("resnet18", options.pop("target_ms"), **options)

    return run


def _load_splits(name: str) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.budget.proxy_data", fromlist=["x"]).load_splits(
        str(f / name), image_size=8
    )


def _trials(name: str) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.search.runner", fromlist=["x"]).load_trials(f / name)


def _resume(name: str) -> Callable[[Path], Any]:
    def run(f: Path) -> Any:
        from vision_backbones.search.runner import SearchConfig, run_search

        return run_search(SearchConfig(**SEARCH), f / name, evaluator=_fake_evaluator, progress=False)

    return run


def _resume_oneshot(f: Path) -> Any:
    from vision_backbones.search.runner import SearchConfig, run_search

    config = SearchConfig(
        space="mnasnet_oneshot", strategy="oneshot", trials=2, strategy_options={"supernet_epochs": 1}
    )
    return run_search(config, f / "oneshot_truncated", progress=False)


def _space(name: Any) -> Callable[[Path], Any]:
    return lambda f: __import__("vision_backbones.search.spaces", fromlist=["x"]).get_space(name)


def _cli(tool: str, kind: str, *argv: str, code: int = 2, message: str) -> Case:
    return Case(" ".join(a.replace("{f}/", "") for a in argv[1:]), tool, kind, list(argv), code, message)


ADAPT = ["adapt", "resnet18", "--data", "digits", "--out", "{new}"]
PICK = ["pick", "--latency-ms", "10", "--no-cache", "--measure-all"]

# ---------------------------------------------------------------------------------------------
# the cases

SCALE = [
    Case("target-1e6", "scale", "runaway", _scale(target_gflops=1e6), ValueError, "more than 1024 x the"),
    Case("phi-40", "scale", "runaway", _scale(phi=40), ValueError, "phi 40 is above the limit 10.6 for efficientnet"),
    Case("phi-1e9", "scale", "runaway", _scale(phi=1e9), ValueError, "is above the limit"),
    Case(
        "dwr-phi-11",
        "scale",
        "runaway",
        _scale("resnet18", strategy="dWr", phi=11),
        ValueError,
        "phi 11 is above the limit 10 for dWr",
    ),
    Case(
        "dwr-depth-heavy",
        "scale",
        "runaway",
        _scale("resnet18", strategy="dWr", phi=6, exponents=(1.0, 0.0, 0.0)),
        ValueError,
        "is above the limit",
    ),
    Case(
        "explicit-depth-100",
        "scale",
        "runaway",
        _scale("resnet18", strategy="explicit", depth=100),
        ValueError,
        "depth multiplier 100 is above the limit 32",
    ),
    Case(
        "explicit-width-40",
        "scale",
        "runaway",
        _scale("resnet18", strategy="explicit", width=40),
        ValueError,
        "width multiplier 40 is above the limit 32",
    ),
    Case(
        "explicit-flops",
        "scale",
        "runaway",
        _scale("resnet18", strategy="explicit", width=20, depth=10),
        ValueError,
        "above the limit 1024 x",
    ),
    Case(
        "explicit-image-size",
        "scale",
        "runaway",
        _scale("resnet18", strategy="explicit", image_size=100_000),
        ValueError,
        "resolution multiplier",
    ),
    Case(
        "explicit-width-negative",
        "scale",
        "silent",
        _scale("resnet18", strategy="explicit", width=-1),
        ValueError,
        "width must be a finite number > 0, got -1",
    ),
    Case(
        "target-negative",
        "scale",
        "ugly",
        _scale(target_gflops=-1),
        ValueError,
        "target_gflops must be a finite number > 0, got -1",
    ),
    Case(
        "target-nan",
        "scale",
        "ugly",
        _scale(target_gflops=math.nan),
        ValueError,
        "target_gflops must be a finite number > 0, got nan",
    ),
    Case(
        "target-inf",
        "scale",
        "runaway",
        _scale(target_gflops=math.inf),
        ValueError,
        "target_gflops must be a finite number > 0, got inf",
    ),
    Case(
        "phi-str",
        "scale",
        "ugly",
        _scale(phi="1"),
        ValueError,
        "phi must be a finite number >= 0 (compound scaling grows the base), got '1'",
    ),
    Case("phi-bool", "scale", "silent", _scale(phi=True), ValueError, "got True"),
    Case(
        "alpha-below-one",
        "scale",
        "ugly",
        _scale(phi=1, coefficients=(0.5, 1.1, 1.15)),
        ValueError,
        "alpha must be a finite number >= 1, got 0.5",
    ),
    Case(
        "image-size-negative-r",
        "scale",
        "silent",
        _image_size(224, -1),
        ValueError,
        "resolution must be a finite number > 0, got -1",
    ),
    Case(
        "image-size-zero-r",
        "scale",
        "silent",
        _image_size(224, 0),
        ValueError,
        "resolution must be a finite number > 0, got 0",
    ),
    Case("image-size-nan-r", "scale", "silent", _image_size(224, math.nan), ValueError, "got nan"),
    Case(
        "image-size-zero-base",
        "scale",
        "silent",
        _image_size(0, 1.0),
        ValueError,
        "base_image_size must be an int >= 1, got 0",
    ),
    Case(
        "image-size-float-base",
        "scale",
        "silent",
        _image_size(224.0, 1.0),
        ValueError,
        "base_image_size must be an int >= 1, got 224.0",
    ),
    Case(
        "multipliers-width-negative",
        "scale",
        "silent",
        _multipliers(width=-1),
        ValueError,
        "Multipliers.width must be a finite number > 0, got -1",
    ),
    Case(
        "multipliers-depth-zero",
        "scale",
        "silent",
        _multipliers(depth=0),
        ValueError,
        "Multipliers.depth must be a finite number > 0, got 0",
    ),
    Case(
        "multipliers-resolution-inf",
        "scale",
        "silent",
        _multipliers(resolution=math.inf),
        ValueError,
        "Multipliers.resolution",
    ),
    Case("multipliers-width-str", "scale", "silent", _multipliers(width="2"), ValueError, "got '2'"),
    Case(
        "scaled-overrides-tuple",
        "scale",
        "ugly",
        lambda f: __import__("vision_backbones.scaling", fromlist=["x"]).scaled_overrides("resnet18", (1, 2, 1)),
        ValueError,
        "multipliers must be a scaling.Multipliers",
    ),
    _cli("scale", "runaway", "scale", "efficientnet_b0", "--phi", "40", message="phi 40 is above the limit 10.6"),
    _cli("scale", "runaway", "scale", "efficientnet_b0", "--target-gflops", "1e6", message="more than 1024 x"),
    _cli(
        "scale", "runaway", "scale", "resnet18", "--width", "100", message="width multiplier 100 is above the limit 32"
    ),
    _cli("scale", "silent", "scale", "resnet18", "--width", "-1", message="width must be a finite number > 0, got -1"),
    _cli("scale", "silent", "scale", "resnet18", "--phi", "1", "--json", "{new}.txt", message="does not end in .json"),
    _cli(
        "scale",
        "ugly",
        "scale",
        "resnet18",
        "--phi",
        "1",
        "--json",
        "{f}/a_folder.json",
        message="is a folder; expected a .json file path",
    ),
    _cli(
        "scale",
        "ugly",
        "scale",
        "resnet18",
        "--phi",
        "nan",
        message="phi must be a finite number >= 0 (compound scaling grows the base), got nan",
    ),
]

PICK_CASES = [
    Case(
        "runtime-tflite",
        "pick",
        "silent",
        _settings(runtime="tflite"),
        ValueError,
        "runtime must be one of 'eager', 'onnxruntime', got 'tflite'",
    ),
    Case(
        "clock-gpu",
        "pick",
        "silent",
        _settings(clock="gpu"),
        ValueError,
        "clock must be one of 'wall', 'cpu', got 'gpu'",
    ),
    Case(
        "image-size-zero", "pick", "ugly", _settings(image_size=0), ValueError, "image_size must be an int >= 1, got 0"
    ),
    Case("batch-zero", "pick", "ugly", _settings(batch=0), ValueError, "batch must be an int >= 1, got 0"),
    Case("threads-float", "pick", "silent", _settings(threads=1.5), ValueError, "threads must be an int >= 1, got 1.5"),
    Case("rounds-bool", "pick", "silent", _settings(rounds=True), ValueError, "rounds must be an int >= 1, got True"),
    Case(
        "rank-budget-negative",
        "pick",
        "silent",
        _rank(-1),
        ValueError,
        "--latency-ms (budget_ms) must be a positive number of milliseconds, got -1",
    ),
    Case("rank-budget-zero", "pick", "silent", _rank(0), ValueError, "got 0"),
    Case("rank-budget-nan", "pick", "silent", _rank(math.nan), ValueError, "got nan"),
    Case("rank-budget-inf", "pick", "silent", _rank(math.inf), ValueError, "got inf"),
    Case("rank-budget-str", "pick", "silent", _rank("10"), ValueError, "got '10'"),
    Case(
        "rank-memory-negative",
        "pick",
        "silent",
        _rank(10, -5),
        ValueError,
        "--memory-mb (memory_limit_mb) must be a positive number of MiB, got -5",
    ),
    Case("zoo-budget-negative", "pick", "silent", _zoo(budget=-1), ValueError, "got -1"),
    Case(
        "zoo-names-str",
        "pick",
        "ugly",
        _zoo(names="resnet18"),
        ValueError,
        "names must be a non-empty list of model names",
    ),
    Case("zoo-names-empty", "pick", "ugly", _zoo(names=[]), ValueError, "names must be a non-empty list"),
    Case(
        "zoo-cache-folder",
        "pick",
        "ugly",
        _zoo(cache="a_folder.json"),
        ValueError,
        "is a folder; expected a .json file path",
    ),
    Case("zoo-cache-suffix", "pick", "silent", _zoo(cache="cache.txt"), ValueError, "does not end in .json"),
    Case(
        "cache-list",
        "pick",
        "corrupt",
        _zoo(cache="cache_list.json"),
        ValueError,
        "holds a JSON list, not an object of settings; delete it or pass --refresh",
    ),
    Case(
        "cache-entry-list",
        "pick",
        "corrupt",
        _zoo(cache="cache_entry_list.json"),
        ValueError,
        "the entry for these settings is a list",
    ),
    Case(
        "cache-row-str",
        "pick",
        "corrupt",
        _zoo(cache="cache_row_str.json"),
        ValueError,
        "the row of 'resnet18' is a str",
    ),
    Case(
        "cache-latency-str",
        "pick",
        "corrupt",
        _zoo(cache="cache_latency_str.json"),
        ValueError,
        "'resnet18' has latency_ms='fast'",
    ),
    Case(
        "cache-flops-str",
        "pick",
        "corrupt",
        _zoo(cache="cache_flops_str.json"),
        ValueError,
        "'resnet18' has flops='many'",
    ),
    Case(
        "cache-status-int",
        "pick",
        "corrupt",
        _zoo(cache="cache_status_int.json"),
        ValueError,
        "'resnet18' has status=3",
    ),
    Case("cache-latency-nan", "pick", "corrupt", _zoo(cache="cache_latency_nan.json"), ValueError, "latency_ms=nan"),
    Case(
        "cache-other-name",
        "pick",
        "corrupt",
        _zoo(cache="cache_other_name.json"),
        ValueError,
        "the row under 'resnet18' names 'alexnet'",
    ),
    Case(
        "cache-bad-json",
        "pick",
        "corrupt",
        _zoo(cache="cache_bad.json"),
        ValueError,
        "cache_bad.json' is not valid JSON",
    ),
    Case(
        "cache-binary",
        "pick",
        "corrupt",
        _zoo(cache="cache_binary.json"),
        ValueError,
        "cache_binary.json' is not valid JSON (not text)",
    ),
    _cli("pick", "silent", *PICK, "--plot", "{new}.txt", message="--plot '"),
    _cli(
        "pick",
        "silent",
        "pick",
        "--latency-ms",
        "10",
        "--no-cache",
        "--plot",
        "{new}.txt",
        message="does not end in .png; expected a .png file path",
    ),
    _cli("pick", "ugly", *PICK, "--plot", "{f}/a_folder.png", message="is a folder; expected a .png file path"),
    _cli("pick", "silent", *PICK, "--json", "{new}.csv", message="--json '"),
    _cli("pick", "ugly", *PICK, "--json", "{f}/a_folder.json", message="is a folder; expected a .json file path"),
    _cli("pick", "ugly", "pick", "--latency-ms", "10", "--cache", "{f}/a_folder.json", message="--cache '"),
    _cli("pick", "silent", "pick", "--latency-ms", "10", "--cache", "{new}.txt", message="does not end in .json"),
    _cli("pick", "silent", "pick", "--latency-ms", "nan", message="must be a positive number of milliseconds, got nan"),
    _cli("pick", "silent", "pick", "--latency-ms", "inf", message="got inf"),
    _cli(
        "pick",
        "ugly",
        *PICK,
        "--memory-mb",
        "0",
        message="--memory-mb (memory_limit_mb) must be a positive number of MiB, got 0.0",
    ),
    _cli("pick", "silent", *PICK, "--runtime", "tflite", message="invalid choice: 'tflite'"),
    _cli(
        "pick",
        "corrupt",
        "pick",
        "--latency-ms",
        "10",
        "--image-size",
        "32",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--models",
        "resnet18",
        "--cache",
        "{f}/cache_row_str.json",
        message="is not a cache this command wrote: the row of 'resnet18' is a str, not an object; delete it or pass --refresh",
    ),
]

ADAPT_CASES = [
    Case(
        "fraction-zero",
        "adapt",
        "ugly",
        _adapt_args(target_ms=math.inf, target_fraction=0.0),
        ValueError,
        "--latency-fraction (target_fraction) must be a share of the starting latency in (0, 1], got 0.0",
    ),
    Case(
        "fraction-above-one",
        "adapt",
        "ugly",
        _adapt_args(target_ms=math.inf, target_fraction=1.5),
        ValueError,
        "in (0, 1], got 1.5",
    ),
    Case(
        "fraction-nan",
        "adapt",
        "ugly",
        _adapt_args(target_ms=math.inf, target_fraction=math.nan),
        ValueError,
        "got nan",
    ),
    Case("no-target", "adapt", "ugly", _adapt_args(target_ms=math.inf), ValueError, "give a target"),
    Case(
        "latency-negative",
        "adapt",
        "ugly",
        _adapt_args(target_ms=-5.0),
        ValueError,
        "--latency-ms (target_ms) must be a positive number of milliseconds, got -5.0",
    ),
    Case("latency-nan", "adapt", "ugly", _adapt_args(target_ms=math.nan), ValueError, "got nan"),
    Case("latency-str", "adapt", "ugly", _adapt_args(target_ms="5"), ValueError, "got '5'"),
    Case(
        "tolerance-negative",
        "adapt",
        "silent",
        _adapt_args(tolerance=-1.0),
        ValueError,
        "--tolerance (tolerance) must be a finite number in [0, 1), got -1.0",
    ),
    Case("tolerance-one", "adapt", "silent", _adapt_args(tolerance=1.0), ValueError, "got 1.0"),
    Case(
        "step-fraction-zero",
        "adapt",
        "runaway",
        _adapt_args(step_fraction=0.0),
        ValueError,
        "--step-fraction (step_fraction) must be a finite number in (0, 1), got 0.0",
    ),
    Case(
        "image-size-small",
        "adapt",
        "ugly",
        _adapt_args(image_size=4),
        ValueError,
        "--image-size (image_size) must be an int >= 8, got 4",
    ),
    Case(
        "repeats-zero",
        "adapt",
        "ugly",
        _adapt_args(repeats=0),
        ValueError,
        "--repeats (repeats) must be an int >= 1, got 0",
    ),
    Case(
        "max-steps-zero",
        "adapt",
        "ugly",
        _adapt_args(max_steps=0),
        ValueError,
        "--max-steps (max_steps) must be an int >= 1, got 0",
    ),
    Case(
        "clock-gpu",
        "adapt",
        "silent",
        _adapt_args(clock="gpu"),
        ValueError,
        "--clock (clock) must be one of 'wall', 'cpu', got 'gpu'",
    ),
    Case(
        "data-empty-folder",
        "adapt",
        "ugly",
        _adapt_args(data="{f}/empty_images"),
        ValueError,
        "is an empty folder; expected an image folder (one subfolder per class)",
    ),
    Case(
        "data-one-class",
        "adapt",
        "ugly",
        _adapt_args(data="{f}/one_class"),
        ValueError,
        "has 1 class ('cat'); expected at least 2 classes",
    ),
    Case(
        "data-few-images",
        "adapt",
        "ugly",
        _adapt_args(data="{f}/few_images"),
        ValueError,
        "class 'a' has 1 images; expected at least 5 per class",
    ),
    Case(
        "data-no-images",
        "adapt",
        "ugly",
        _adapt_args(data="{f}/only_text"),
        ValueError,
        "has no images directly in its subfolders ('a')",
    ),
    Case(
        "data-file",
        "adapt",
        "ugly",
        _adapt_args(data="{f}/a_file"),
        ValueError,
        "is a file, not a folder or a .tar shard",
    ),
    Case(
        "data-unknown",
        "adapt",
        "ugly",
        _adapt_args(data="cifar10"),
        ValueError,
        "--data 'cifar10' is not mnist or digits and no such path exists",
    ),
    Case(
        "data-int",
        "adapt",
        "ugly",
        _adapt_args(data=3),
        ValueError,
        "--data must be mnist, digits, an image folder (one subfolder per class) or WebDataset shards",
    ),
    Case(
        "start-list",
        "adapt",
        "ugly",
        _adapt_args(start_overrides=[1]),
        ValueError,
        "--start (start_overrides) must be a dict of overrides",
    ),
    Case(
        "start-bad-type",
        "adapt",
        "silent",
        _adapt_args(start_overrides={"widths": "64"}),
        ValueError,
        "widths='64' for model 'resnet18'",
    ),
    Case(
        "load-splits-empty",
        "adapt",
        "ugly",
        _load_splits("empty_images"),
        ValueError,
        "is an empty folder",
    ),
    Case("load-splits-missing", "adapt", "ugly", _load_splits("nope"), ValueError, "no such path exists"),
    _cli(
        "adapt",
        "ugly",
        *ADAPT,
        "--latency-fraction",
        "0",
        message="--latency-fraction (target_fraction) must be a share of the starting latency in (0, 1], got 0.0",
    ),
    _cli("adapt", "ugly", *ADAPT, "--latency-fraction", "1.5", message="in (0, 1], got 1.5"),
    _cli(
        "adapt",
        "silent",
        *ADAPT,
        "--latency-ms",
        "5",
        "--tolerance",
        "-1",
        message="--tolerance (tolerance) must be a finite number in [0, 1), got -1.0",
    ),
    _cli(
        "adapt",
        "ugly",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "{f}/empty_images",
        "--out",
        "{new}",
        message="is an empty folder",
    ),
    _cli(
        "adapt",
        "ugly",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "digits",
        "--out",
        "{f}/a_file",
        message="--out '",
    ),
    _cli("adapt", "ugly", *ADAPT, "--latency-ms", "nan", message="got nan"),
    _cli(
        "adapt",
        "runaway",
        *ADAPT,
        "--latency-ms",
        "5",
        "--step-fraction",
        "0",
        message="--step-fraction (step_fraction)",
    ),
    _cli(
        "adapt",
        "leftover",
        *ADAPT,
        "--latency-ms",
        "5",
        "--start",
        '{"widths": "x"}',
        message="widths='x' for model 'resnet18'",
    ),
    _cli(
        "adapt",
        "leftover",
        "adapt",
        "inception_v3",
        "--latency-ms",
        "5",
        "--out",
        "{new}",
        message="declares no channel fields",
    ),
    _cli(
        "adapt",
        "corrupt",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "digits",
        "--out",
        "{f}/adapt_other",
        message="holds another NetAdapt run (differs in",
    ),
    _cli(
        "adapt",
        "corrupt",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "digits",
        "--out",
        "{f}/adapt_truncated",
        message="adapt_truncated/state.pt' is truncated or corrupt",
    ),
    _cli(
        "adapt",
        "ugly",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "digits",
        "--out",
        "{f}/adapt_finished",
        message="holds a finished run (arch.json); pass --force",
    ),
    _cli(
        "adapt",
        "ugly",
        "adapt",
        "resnet18",
        "--latency-ms",
        "5",
        "--data",
        "digits",
        "--out",
        "{f}/adapt_old_log",
        message="log.jsonl' exists; pass --force",
    ),
]

SEARCH_CASES = [
    Case("space-list", "search", "ugly", _space(["mnasnet"]), ValueError, "unknown space ['mnasnet']; expected one of"),
    Case("space-none", "search", "ugly", _space(None), ValueError, "unknown space None"),
    Case("space-dict", "search", "ugly", _space({}), ValueError, "unknown space {}"),
    Case(
        "load-trials-missing",
        "search",
        "silent",
        _trials("nope"),
        ValueError,
        "nope' is not a folder; expected the --out folder of a search",
    ),
    Case(
        "load-trials-empty-folder",
        "search",
        "silent",
        _trials("no_trials"),
        ValueError,
        "no_trials/trials.jsonl' does not exist",
    ),
    Case("load-trials-file", "search", "silent", _trials("a_file"), ValueError, "a_file' is not a folder"),
    Case(
        "load-trials-bad-line",
        "search",
        "corrupt",
        _trials("search_bad_line"),
        ValueError,
        "trials.jsonl' line 2 is not valid JSON",
    ),
    Case(
        "load-trials-list-row",
        "search",
        "corrupt",
        _trials("search_list_row"),
        ValueError,
        "trial row 2 is a JSON list, not a trial object",
    ),
    Case(
        "load-trials-no-number",
        "search",
        "corrupt",
        _trials("search_no_number"),
        ValueError,
        "trial row 1 has number=None",
    ),
    Case(
        "load-trials-bad-reward",
        "search",
        "corrupt",
        _trials("search_bad_reward"),
        ValueError,
        "has reward='x'; expected a number",
    ),
    Case(
        "resume-bad-line",
        "search",
        "corrupt",
        _resume("search_bad_line"),
        ValueError,
        "line 2 is not valid JSON (Expecting property name enclosed in double quotes at char 1); delete that line",
    ),
    Case(
        "resume-truncated-state",
        "search",
        "corrupt",
        _resume("search_truncated_state"),
        ValueError,
        "state.pt' is truncated or corrupt",
    ),
    Case(
        "resume-truncated-state-fix",
        "search",
        "corrupt",
        _resume("search_truncated_state"),
        ValueError,
        "delete it and rerun (the strategy replays the trials in trials.jsonl)",
    ),
    Case(
        "resume-empty-state",
        "search",
        "corrupt",
        _resume("search_empty_state"),
        ValueError,
        "state.pt' is truncated or corrupt",
    ),
    Case("resume-list-state", "search", "corrupt", _resume("search_list_state"), ValueError, "is not a search state"),
    Case(
        "resume-foreign-state",
        "search",
        "corrupt",
        _resume("search_foreign_state"),
        ValueError,
        "does not hold this strategy's state",
    ),
    Case(
        "resume-bad-config",
        "search",
        "corrupt",
        _resume("search_bad_config"),
        ValueError,
        "search.json' is not JSON; expected the search.json of a search folder (start over with a new --out)",
    ),
    Case(
        "resume-truncated-supernet",
        "search",
        "corrupt",
        _resume_oneshot,
        ValueError,
        "supernet.pt' is truncated or corrupt",
    ),
    Case("run-out-file", "search", "ugly", _resume("a_file"), ValueError, "is a file; expected a folder"),
    _cli(
        "search",
        "leftover",
        "search",
        "--space",
        "nasbench_resnet",
        "--trials",
        "0",
        "--out",
        "{new}",
        message="--trials: expected an int >= 1",
    ),
    _cli(
        "search",
        "leftover",
        "search",
        "--space",
        "nasbench_resnet",
        "--trials",
        "2",
        "--strategy",
        "bayes",
        "--out",
        "{new}",
        message="strategy must be one of",
    ),
    _cli(
        "search",
        "leftover",
        "search",
        "--space",
        "mnasnet_x",
        "--trials",
        "2",
        "--out",
        "{new}",
        message="unknown space 'mnasnet_x'",
    ),
    _cli(
        "search",
        "ugly",
        "search",
        "--space",
        "nasbench_resnet",
        "--trials",
        "2",
        "--out",
        "{f}/a_file",
        message="is a file; expected a folder",
    ),
    _cli(
        "search",
        "corrupt",
        "search",
        "--space",
        "nasbench_resnet",
        "--trials",
        "3",
        "--out",
        "{f}/search_bad_line",
        message="line 2 is not valid JSON",
    ),
]


def _grid(out: str = "grid_new", base: str = "mnasnet0_5", **kwargs: Any) -> Callable[[Path], Any]:
    def run(f: Path) -> Any:
        from vision_backbones.budget.grid import run_grid

        # the refusal must come before any candidate is trained
        with mock.patch(
            "vision_backbones.search.evaluate.evaluate_architecture",
            side_effect=AssertionError("refused after training started"),
        ):
            return run_grid(base, f / out, **kwargs)

    return run


GRID_CASES = [
    Case(
        "seeds-empty",
        "grid",
        "ugly",
        _grid(seeds=()),
        ValueError,
        "seeds must be a non-empty list of ints >= 0, got ()",
    ),
    Case("seeds-str", "grid", "ugly", _grid(seeds="0"), ValueError, "seeds must be a non-empty list"),
    Case("seed-negative", "grid", "ugly", _grid(seeds=(-1,)), ValueError, "seed must be an int >= 0, got -1"),
    Case("epochs-zero", "grid", "ugly", _grid(epochs=0), ValueError, "epochs must be an int >= 1, got 0"),
    Case(
        "train-images-zero",
        "grid",
        "ugly",
        _grid(train_images=0),
        ValueError,
        "train_images must be an int >= 1, got 0",
    ),
    Case(
        "tolerance-zero",
        "grid",
        "runaway",
        _grid(tolerance=0.0),
        ValueError,
        "tolerance must be a finite number > 0, got 0.0",
    ),
    Case(
        "tolerance-inf",
        "grid",
        "runaway",
        _grid(tolerance=math.inf),
        ValueError,
        "tolerance must be a finite number > 0, got inf",
    ),
    Case(
        "base-fixed-family",
        "grid",
        "ugly",
        _grid(base="inception_v3"),
        ValueError,
        "declares no channel or depth fields",
    ),
    Case("out-file", "grid", "ugly", _grid(out="a_file"), ValueError, "--out '"),
    Case("grid-bad-json", "grid", "corrupt", _grid(out="grid_bad_json"), ValueError, "grid.json' is not valid JSON"),
    Case(
        "grid-bad-json-fix",
        "grid",
        "corrupt",
        _grid(out="grid_bad_json"),
        ValueError,
        "delete it to evaluate every candidate again, or pass a new --out",
    ),
    Case(
        "grid-list",
        "grid",
        "corrupt",
        _grid(out="grid_list"),
        ValueError,
        "holds a JSON list, not the grid's candidates",
    ),
    Case(
        "grid-bad-row",
        "grid",
        "corrupt",
        _grid(out="grid_bad_row"),
        ValueError,
        "candidate '1/1/1' is not a finished row",
    ),
]

CASES = SCALE + PICK_CASES + ADAPT_CASES + SEARCH_CASES + GRID_CASES


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.tool}-{c.kind}-{c.id}") for c in CASES])
def test_bad_input(case: Case, files: Path, capsys) -> None:
    before = sorted(p.name for p in files.iterdir())
    if isinstance(case.run, list):
        new = files / "new" / f"case{CASES.index(case)}"
        argv = [a.replace("{f}", str(files)).replace("{new}", str(new)) for a in case.run]
        try:
            code = cli_main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        captured = capsys.readouterr()
        assert code == case.expect, captured.err
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line, got {len(lines)}: {captured.err}"
        assert "Traceback" not in captured.err
        assert case.message in lines[0], lines[0]
        left = sorted(p.name for p in (files / "new").iterdir() if p.name.split(".")[0] == new.name)
        assert left == [], f"a refused command left {left} behind"
    else:
        with pytest.raises(case.expect) as info:
            case.run(files)
        text = str(info.value)
        assert "\n" not in text.strip(), f"not one line: {text}"
        assert case.message in text, text
    assert sorted(p.name for p in files.iterdir()) == before, "a refused call created or removed a file"


def test_registry_counts() -> None:
    """>= 60 cases across the tools, each tool with at least three classes of issue."""
    counts: dict[str, dict[str, int]] = {}
    for case in CASES:
        assert case.kind in CLASSES, case
        counts.setdefault(case.tool, {}).setdefault(case.kind, 0)
        counts[case.tool][case.kind] += 1
    assert sum(sum(c.values()) for c in counts.values()) >= 60
    assert set(counts) == {"scale", "pick", "adapt", "search", "grid"}
    assert all(len(c) >= 3 for c in counts.values()), counts
    assert len({c.id for c in CASES if c.tool == "search"}) == len([c for c in CASES if c.tool == "search"])
