"""A measurement taken in a forked copy of this process, so it does not depend on what the process ran before.

Eager PyTorch slows as a process ages: after six ``torch.onnx`` exports an eager mnasnet1_0 ran 15-28 % slower,
a depthwise convolution 19-30 %, the ruler 5-11 % and even 300 ReLU calls on 8 numbers 7-16 % (Intel Xeon,
stop 32, load average below 1; with or without oneDNN, and ``gc.collect``, ``malloc_trim`` or new copies of
the models did not restore it), so the ratio of a network to the ruler, which ruling assumes fixed, moved by
8-17 %. A forked child of a young process reads as young as its parent (mnasnet1_0 / ruler 0.67-0.70 in
three children and the parent, 0.75-0.76 in the same children after six exports), and the parent stays young
however much its children run. :func:`in_fork` runs one measurement that way: a predictor's build and its
benchmark then time every network in the same state of the process, however long they run.

ONNX Runtime's sessions age less, but not nothing: against the ONNX Runtime ruler, sessions made before 80
exports (each timed in a session) read ShuffleNets 5-14 % slower after them (shufflenet_v1_g4_x0_5 2.63 ->
2.84 ms, shufflenet_v1_g8_x1_0 7.00 -> 7.48, shufflenet_v2_x0_5 2.29 -> 2.53), new sessions made after them
up to 14 %, while mobilenet_v3_small and resnet50 stayed within 3 % (Intel Xeon, stop 34, load average
below 1). A predictor's build (about 400 exports) and its benchmark (1,312) had read the ShuffleNets 2-33 %
apart.

A fork is only as young as the process it is forked from, and fitting forests ages a process too: after nine
random-forest fits of a latency predictor (18 s), children forked from that process read shufflenet_v2_x0_5
9.6 %, shufflenet_v1_g8_x1_0 7.0 % and mobilenet_v3_small 7.7 % slower against the ONNX Runtime ruler than
before the fits (resnet50 -0.6 %), while children of a :class:`YoungProcess` made before the fits read the
same within 0.5 % (stop 34). A benchmark that forked each row from the process that had built and fitted
its predictor read every registered model a median 5 % and the ShuffleNets 6-25 % slower than the build.
So a predictor's build and its benchmark take every measurement in forks of a young copy made at their
start (:func:`young_copy`), whatever the runtime.

Where there is no ``fork`` (Windows), or where PyTorch runs more than one intra-op thread (GNU OpenMP's
thread pool does not survive a fork: the child hangs at its first parallel region), the work runs in this
process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import torch

from vision_backbones.measure.ruler import Ruler

Result = TypeVar("Result")


def can_fork() -> bool:
    """Whether :func:`in_fork` forks here: an ``os.fork`` and one intra-op thread."""
    return hasattr(os, "fork") and torch.get_num_threads() == 1


def in_fork(work: Callable[[], Result], ruler: Ruler | None = None) -> Result:
    """``work()`` run in a forked child (a copy of this process as it is now) and its result returned.

    The rounds the child timed on ``ruler`` are added to this process's ``ruler.round_ms``, so the quiet
    gate's window (:meth:`.ruler.Ruler.quiet_ms`) sees them. An exception in the child is raised here as a
    ``RuntimeError`` carrying its type, message and the child's traceback; a child that dies without a
    word (killed, out of memory) is a ``RuntimeError`` naming its exit code. The result travels back
    pickled from a child of this process, never from outside it."""
    if not can_fork():
        return work()
    receive, send = multiprocessing.Pipe(duplex=False)
    mark = len(ruler.round_ms) if ruler is not None else 0
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            receive.close()
            _fresh_streams()
            result = work()
            send.send(("ok", result, ruler.round_ms[mark:] if ruler is not None else []))
        except BaseException as error:  # every failure is reported to the parent
            code = 1
            with contextlib.suppress(BaseException):
                send.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
        finally:
            os._exit(code)
    send.close()
    try:
        message: tuple[Any, ...] = receive.recv()
    except EOFError:
        message = ()
    finally:
        receive.close()
        _, status = os.waitpid(pid, 0)
    if not message:
        raise RuntimeError(
            f"the measuring child process ended without a result (exit code {os.waitstatus_to_exitcode(status)})"
        )
    if message[0] == "error":
        raise RuntimeError(f"in the measuring child process: {message[1]}\n{message[2]}")
    _, result, rounds = message
    if ruler is not None:
        ruler.round_ms.extend(rounds)
    return result


class YoungProcess:
    """A forked copy of this process as it is now, kept beside it to take measurements later, each in a
    fork of that copy (:func:`in_fork`): however much this process trains or builds meanwhile, every
    measurement runs in the same young state. NetAdapt measures its start before it trains and its end
    after hours of training; in one process the end then reads aged (Intel Xeon, stop 32: 5 of 8 runs ended
    within ±5 % of the target when re-timed, 7 of 8 with this copy).

    :meth:`setup` runs ``work(state)`` in the copy itself (to make what later work shares, such as the
    ruler, whose round history the quiet gate reads); :meth:`run` runs ``work(state)`` in a fork of the
    copy, the rounds it timed on ``state["ruler"]`` kept there. ``work`` must pickle (a module-level
    function or a ``functools.partial`` of one). Use only with one intra-op thread (:func:`can_fork`)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end,), daemon=True)
        self._process.start()
        child_end.close()

    def setup(self, work: Callable[[dict[str, Any]], Result]) -> Result:
        return self._ask(("setup", work))

    def run(self, work: Callable[[dict[str, Any]], Result]) -> Result:
        return self._ask(("run", work))

    def __enter__(self) -> YoungProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the copy is already gone
                self._connection.send(None)
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
        self._connection.close()

    def _ask(self, request: tuple[str, Callable[[dict[str, Any]], Any]]) -> Any:
        self._connection.send(request)
        try:
            status, value = self._connection.recv()
        except EOFError:
            raise RuntimeError(
                f"the measuring process ended without a result (exit code {self._process.exitcode})"
            ) from None
        if status == "error":
            raise RuntimeError(f"in the measuring process: {value}")
        return value


class ThisProcess:
    """:class:`YoungProcess`'s interface where there is no fork (:func:`can_fork`): the work runs here, on a
    state kept here."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __enter__(self) -> ThisProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def setup(self, work: Callable[[dict[str, Any]], Result]) -> Result:
        return work(self.state)

    def run(self, work: Callable[[dict[str, Any]], Result]) -> Result:
        return work(self.state)

    def close(self) -> None:
        self.state.clear()


def young_copy() -> YoungProcess | ThisProcess:
    """Where a long job takes its measurements: a :class:`YoungProcess` made now (call it before the job
    builds, fits or exports anything), or :class:`ThisProcess` where this process cannot fork."""
    return YoungProcess() if can_fork() else ThisProcess()


def _serve(connection: Any) -> None:
    """The young copy's loop: requests in, results (or the failure as text) out, until ``None``."""
    _fresh_streams()
    state: dict[str, Any] = {}
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        if request is None:
            return
        kind, work = request
        try:
            if kind == "setup":
                result = work(state)
            else:
                result = in_fork(partial(work, state), state.get("ruler"))
            connection.send(("ok", result))
        except BaseException as error:  # every failure goes back to the caller
            connection.send(("error", f"{type(error).__name__}: {error}"))


def _fresh_streams() -> None:
    """New stream objects on the same descriptors, in a forked child: another thread of the parent (a
    progress bar's refresh) may have held the old ones' locks at the fork, and the child would wait forever."""
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the child
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
