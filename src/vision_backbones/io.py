"""Atomic file writes (a file is either its old self or completely new, never half-written), and JSON.

Everything this library writes (weights, conversions, exports, training checkpoints, reports) goes
through :func:`atomic_write`: the data is written to ``.<name>.vbtmp-<pid>`` in the target folder,
flushed to disk, given the permissions a plain ``open()`` would give it (the replaced file's, if
any), then renamed over the target (``os.replace`` is atomic on one filesystem).

- An exception while writing removes the temporary file; so does SIGTERM or SIGINT (the handler
  removes it, then hands the signal on to the previous handler).
- SIGKILL cannot be caught: the next write into the same folder removes temporary files of this
  naming whose process is gone (:func:`sweep_stale_temp_files`).
- A full disk is reported as ``no space left on device while writing PATH`` (:class:`DiskFullError`)
  and the destination is left as it was.

JSON and JSON lines go through :func:`write_json` / :func:`read_json` / :func:`write_jsonl` /
:func:`append_jsonl` / :func:`read_jsonl`: atomic, tuples written as lists (``tuples=True`` reads
them back as tuples), and a corrupt file or line is one ``ValueError`` naming the file (and line).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

TEMP_MARK = ".vbtmp-"
_TEMP_NAME = re.compile(r"^\..+\.vbtmp-(\d+)$")
_ACTIVE: set[str] = set()  # temporary files this process is writing now
_LOCK = threading.Lock()
# a write that fails with less than this free in the destination filesystem counts as "disk full"
_NEARLY_FULL_BYTES = 1 << 20


class DiskFullError(OSError):
    """The destination filesystem ran out of space; the destination is untouched."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}")
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror)


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """The temporary name :func:`atomic_write` uses for ``path`` in this process."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.<name>.vbtmp-<pid>`` files in ``folder`` left by processes that no longer run."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or entry.path in _ACTIVE or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _remove_active(*_: object) -> None:
    for tmp in list(_ACTIVE):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _on_signal(signum: int, frame: object) -> None:
    previous = _PREVIOUS_HANDLERS.get(signum, signal.SIG_DFL)
    if callable(previous):  # the program handles it (KeyboardInterrupt, Lightning): the write's cleanup runs
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    _remove_active()
    signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without us
    os.kill(os.getpid(), signum)


_PREVIOUS_HANDLERS: dict[int, object] = {}


@contextlib.contextmanager
def _signals_remove(tmp: str) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT remove ``tmp`` before doing what they did before."""
    main = threading.current_thread() is threading.main_thread()
    with _LOCK:
        _ACTIVE.add(tmp)
        install = main and not _PREVIOUS_HANDLERS
        if install:
            for signum in (signal.SIGTERM, signal.SIGINT):
                _PREVIOUS_HANDLERS[signum] = signal.getsignal(signum)
                signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE.discard(tmp)
            if install:
                for restored, previous in _PREVIOUS_HANDLERS.items():
                    signal.signal(restored, previous)  # type: ignore[arg-type]
                _PREVIOUS_HANDLERS.clear()


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch.save / safetensors / jit report a full disk in their own words ("unexpected pos", ...)
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PermissionError(errno.EACCES, f"permission denied: cannot create the folder of {path}") from None
    sweep_stale_temp_files(path.parent)
    tmp = str(temp_path_for(path))
    with _signals_remove(tmp):
        try:
            try:
                # create it here, so a folder we may not write to is reported for the destination
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            except PermissionError:
                raise PermissionError(errno.EACCES, f"permission denied: cannot write {path}") from None
            try:
                write(tmp)
                with open(tmp, "rb") as written:  # the data reaches the disk before the rename makes it visible
                    os.fsync(written.fileno())
            except Exception as error:
                if _disk_full(error, path.parent):
                    raise DiskFullError(path) from None
                raise
            umask = os.umask(0)
            os.umask(umask)
            # give it the replaced file's mode, or what open() would (0644 with the usual umask)
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_stream(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically through ``write(file)`` on an open binary file (torch.save, jit.save, ...).

    Library writers that take a file object run their I/O through Python, so a full disk is an
    ``OSError`` here rather than an abort inside C++ code.
    """

    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()

    return atomic_write(path, to_file)


def check_overwrite(path: str | os.PathLike[str], *, force: bool, flag: str = "--force") -> Path:
    """The overwrite policy of every command: an existing output is refused unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a folder; expected a file path")
    if path.exists() and not force:
        raise ValueError(f"output {str(path)!r} exists; pass {flag} to overwrite it")
    return path


def check_output_file(label: str, path: str | os.PathLike[str], suffixes: tuple[str, ...]) -> Path:
    """An output file path whose suffix is one of ``suffixes`` (``(".png",)``) and that is not a folder.

    The one check of ``--plot`` / ``--json`` / ``--cache`` style arguments, run before any work so a
    PNG never lands in ``p.txt`` and a folder is refused in one line rather than as ``[Errno 21]``.
    """
    path = Path(path)
    expected = " or ".join(suffixes)
    if path.is_dir():
        raise ValueError(f"{label} {str(path)!r} is a folder; expected a {expected} file path")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{label} {str(path)!r} does not end in {expected}; expected a {expected} file path")
    return path


def check_output_folder(label: str, path: str | os.PathLike[str]) -> Path:
    """An output folder path: a folder or nothing yet (a file there is refused in one line)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{label} {str(path)!r} is a file; expected a folder (a new one, or one this command wrote)")
    return path


def load_torch_file(path: str | os.PathLike[str], *, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``; a truncated or corrupt file is one ``ValueError``
    naming the file, what is wrong and ``fix`` (what to do: a new ``--out``, delete the file, ...)."""
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} does not exist; {fix}") from None
    except IsADirectoryError:
        raise ValueError(f"{str(path)!r} is a folder, not a saved state; {fix}") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0][:100]
        raise ValueError(f"{str(path)!r} is truncated or corrupt ({reason}); {fix}") from None


# ----------------------------------------------------------------- JSON and JSON lines
# Configs hold tuples, JSON holds lists: every file this library writes goes through ``jsonable``
# on the way out, and readers that rebuild configs ask for ``tuples=True`` on the way in.


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and mappings as dicts, at every depth (what JSON holds)."""
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(item) for item in value]
    return value


def lists_to_tuples(value: Any) -> Any:
    """``value`` with JSON lists back as tuples, at every depth (config fields are tuples)."""
    if isinstance(value, list):
        return tuple(lists_to_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: lists_to_tuples(item) for key, item in value.items()}
    return value


def json_text(value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``value`` as JSON text ending in a newline (tuples as lists)."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys) + "\n"


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``value`` to ``path`` as JSON, atomically (tuples as lists)."""
    return atomic_write_bytes(path, json_text(value, indent=indent, sort_keys=sort_keys).encode())


def _parse(path: Path, text: str, where: str, fix: str = "") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{str(path)!r}{where} is not valid JSON ({error.msg} at char {error.pos})" + (f"; {fix}" if fix else "")
        ) from None


def read_json(path: str | os.PathLike[str], *, tuples: bool = False) -> Any:
    """The JSON value in ``path``; ``tuples``: lists come back as tuples. Bad files: one-line ``ValueError``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{str(path)!r} is a folder; expected a JSON file") from None
    value = _parse(path, text, "")
    return lists_to_tuples(value) if tuples else value


def read_jsonl(path: str | os.PathLike[str], *, tuples: bool = False, fix: str = "") -> list[Any]:
    """One value per non-empty line of ``path`` (``[]`` when it does not exist); a bad line names the file
    and line (and ``fix``: what to do about it)."""
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; expected a JSON-lines file")
    rows = [
        _parse(path, line, f" line {number}", fix)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip()
    ]
    return [lists_to_tuples(row) for row in rows] if tuples else rows


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write one JSON line per row to ``path``, atomically (tuples as lists)."""
    return atomic_write_bytes(path, "".join(json_text(row, indent=None, sort_keys=True) for row in rows).encode())


def append_jsonl(path: str | os.PathLike[str], row: Any) -> Path:
    """Add one JSON line to ``path``.

    The file is rewritten atomically rather than appended to, so a killed process leaves the old
    file or the new one, never a torn last line that would stop every later read.
    """
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    return atomic_write_bytes(path, old + json_text(row, indent=None, sort_keys=True).encode())
