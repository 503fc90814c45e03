"""Measurements in a forked copy of the process: what the child runs does not age the parent, its ruler
rounds come back, and its failures are reported."""

from __future__ import annotations

import os

import pytest
import torch

from vision_backbones.measure import isolated
from vision_backbones.measure.isolated import can_fork, in_fork
from vision_backbones.measure.predictor import pinned
from vision_backbones.measure.ruler import Ruler

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")

_STATE: list[int] = []


def _age_and_report() -> tuple[int, int]:
    _STATE.append(os.getpid())
    return os.getpid(), len(_STATE)


def test_the_child_runs_the_work_and_leaves_this_process_as_it_was() -> None:
    with pinned(1):
        assert can_fork()
        pid, seen = in_fork(_age_and_report)
    assert pid != os.getpid() and seen == len(_STATE) + 1  # the child saw this process's state, plus its own
    assert _STATE == []  # and none of it came back


def test_the_childs_ruler_rounds_join_this_process_ruler() -> None:
    ruler = Ruler(lambda: sum(range(2000)), reference_ms=1.0)
    ruler.round_ms.extend([1.0, 2.0])

    def work() -> float:
        return ruler.round_scale() + ruler.round_scale()

    with pinned(1):
        total = in_fork(work, ruler)
    assert total > 0 and len(ruler.round_ms) == 4 and ruler.round_ms[:2] == [1.0, 2.0]


def test_a_failing_or_dying_child_is_reported() -> None:
    def fails() -> None:
        raise ValueError("width must be positive, got -3")

    with pinned(1):
        with pytest.raises(RuntimeError, match="in the measuring child process: ValueError: width must be positive"):
            in_fork(fails)
        with pytest.raises(RuntimeError, match=r"ended without a result \(exit code 7\)"):
            in_fork(lambda: os._exit(7))


def test_with_several_threads_the_work_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """GNU OpenMP hangs in a forked child at its first parallel region, so no fork then."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not can_fork()
    pid, _ = in_fork(_age_and_report)
    assert pid == os.getpid() and [pid] == _STATE
    _STATE.clear()


@pytest.mark.parametrize("runtime", ["eager", "onnxruntime"])
def test_a_predictor_profiles_each_network_in_forks_of_one_young_copy(
    monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    """One young copy is made as the build starts (before it fits or exports anything) and every profile,
    synthetic ones and ONNX Runtime's fusion survey (its exports age a process) included, runs in its forks."""
    from vision_backbones.measure import predictor_build
    from vision_backbones.measure.predictor import NetworkSample, fingerprint

    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    made: list[list[str]] = []

    class Recording(isolated.YoungProcess):
        def __init__(self) -> None:
            super().__init__()
            self.ran: list[str] = []
            made.append(self.ran)

        def run(self, work):  # type: ignore[no-untyped-def]
            result = super().run(work)
            self.ran.append(result.label if isinstance(result, NetworkSample) else "fusion")
            return result

    monkeypatch.setattr(predictor_build, "young_copy", Recording)
    built = predictor_build.load_or_build(
        None, models=["mnasnet0_5"], per_space=0, budget_s=0, image_size=32, synthetic=1, repeats=1, runtime=runtime
    )
    assert len(made) == 1 and made[0] == [s.label for s in built.samples] + ["fusion"]
    assert made[0][0] == "mnasnet0_5" and sum(label.startswith("synthetic:") for label in made[0]) == 3
    assert all(s.kernels and s.network_ms > 0 for s in built.samples)
    assert built.ruler_ms is not None and built.ruler_ms > 0  # calibrated in the copy, stored here
    assert fingerprint(runtime)["protocol"].endswith(",young")


def test_without_a_fork_the_work_runs_here_on_one_state() -> None:
    """Where this process cannot fork (more than one intra-op thread), a young copy is this process."""
    from vision_backbones.measure.isolated import ThisProcess, young_copy

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with young_copy() as here:
            assert isinstance(here, ThisProcess)
            assert here.setup(_remember_pid) == os.getpid()
            assert here.run(_pids) == (os.getpid(), os.getpid(), len(_STATE))
    finally:
        torch.set_num_threads(before)


def _pids(state: dict[str, int]) -> tuple[int, int, int]:
    return state["copy"], os.getpid(), len(_STATE)


def _missing(state: dict[str, int]) -> int:
    return state["missing"]


def _remember_pid(state: dict[str, int]) -> int:
    state["copy"] = os.getpid()
    return state["copy"]


def test_a_young_process_measures_in_the_state_it_was_made_in() -> None:
    from vision_backbones.measure.isolated import YoungProcess

    with pinned(1):
        young = YoungProcess()
        try:
            _STATE.extend([1, 2, 3])  # this process ages after the copy was made
            copy = young.setup(_remember_pid)
            first = young.run(_pids)
            second = young.run(_pids)
            with pytest.raises(RuntimeError, match=r"in the measuring process: .*KeyError: 'missing'"):
                young.run(_missing)
        finally:
            young.close()
            _STATE.clear()
    assert copy not in (os.getpid(),) and first[0] == second[0] == copy
    assert len({os.getpid(), copy, first[1], second[1]}) == 4  # each measurement in its own fork of the copy
    assert first[2] == second[2] == 0  # the copy never saw what this process did after it was made


def test_netadapts_latency_model_measures_in_a_young_copy_with_one_thread() -> None:
    from vision_backbones.budget.calibrated_latency import LatencyModel

    one = LatencyModel("mnasnet0_5", 32, threads=1, repeats=1, table_path=None, clock="cpu")
    assert one.measure({}, calibrate=False) > 0
    assert isinstance(one.young, isolated.YoungProcess)
    one.young.close()
    two = LatencyModel("mnasnet0_5", 32, threads=2, repeats=1, table_path=None, clock="cpu")
    assert two.measure({}, calibrate=False) > 0
    assert isinstance(two.young, isolated.ThisProcess)  # GNU OpenMP cannot run in a fork: measured here
    assert isinstance(two.young.state["ruler"], Ruler)
