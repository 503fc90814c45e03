"""A measurement taken in a forked copy of this process, so it does not depend on what the process ran before.

Eager PyTorch slows as a process ages: after six ``torch.onnx`` exports an eager mnasnet1_0 ran 15-28 % slower,
a depthwise convolution 19-30 %, the ruler 5-11 % and even 300 ReLU calls on 8 numbers 7-16 % (Intel Xeon,
stop 32, load average below 1; with or without oneDNN, and ``gc.collect``, ``malloc_trim`` or new copies of
the models did not restore it), so the ratio of a network to the ruler, which ruling assumes fixed, moved by
8-17 %. A forked child of a young process reads as young as its parent (mnasnet1_0 / ruler 0.67-0.70 in
three children and the parent, 0.75-0.76 in the same children after six exports), and the parent stays young
however much its children run. :func:`in_fork` runs one measurement that way: a predictor's build and its
benchmark then time every network in the same state of the process, however long they run.

Where there is no ``fork`` (Windows), or where PyTorch runs more than one intra-op thread (GNU OpenMP's
thread pool does not survive a fork: the child hangs at its first parallel region), the work runs in this
process.
"""

from __future__ import annotations

import multiprocessing
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from vision_backbones.measure.ruler import Ruler

Result = TypeVar("Result")


def can_fork() -> bool:
    """Whether :func:`in_fork` forks here: a ``fork`` start method and one intra-op thread."""
    return "fork" in multiprocessing.get_all_start_methods() and torch.get_num_threads() == 1


def in_fork(work: Callable[[], Result], ruler: Ruler | None = None) -> Result:
    """``work()`` run in a forked child (a copy of this process as it is now) and its result returned.

    The rounds the child timed on ``ruler`` are added to this process's ``ruler.round_ms``, so the quiet
    gate's window (:meth:`.ruler.Ruler.quiet_ms`) sees them. An exception in the child is raised here as a
    ``RuntimeError`` carrying its type, message and the child's traceback; a child that dies without a
    word (killed, out of memory) is a ``RuntimeError`` naming its exit code. The result travels back
    pickled from a child of this process, never from outside it."""
    if not can_fork():
        return work()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    mark = len(ruler.round_ms) if ruler is not None else 0

    def child() -> None:
        # new stream objects on the same descriptors: another thread of the parent (a progress bar's
        # refresh) may have held the old ones' locks at the fork, and the child would wait on them forever
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the child
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        try:
            result = work()
            rounds = ruler.round_ms[mark:] if ruler is not None else []
            send.send(("ok", result, rounds))
        except BaseException as error:  # every failure is reported to the parent
            send.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
        finally:
            send.close()

    process = context.Process(target=child, daemon=True)
    process.start()
    send.close()
    try:
        message: tuple[Any, ...] = receive.recv()
    except EOFError:
        process.join()
        raise RuntimeError(
            f"the measuring child process ended without a result (exit code {process.exitcode})"
        ) from None
    finally:
        receive.close()
    process.join()
    if message[0] == "error":
        raise RuntimeError(f"in the measuring child process: {message[1]}\n{message[2]}")
    _, result, rounds = message
    if ruler is not None:
        ruler.round_ms.extend(rounds)
    return result
