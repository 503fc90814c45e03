"""The one rich progress bar every long command shows (the ``[cli]``/``[search]`` extras bring rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn


def progress_bar(
    *extra: ProgressColumn | str, transient: bool = True, stderr: bool = True, remaining: bool = False
) -> Progress:
    """Description, bar, done/total, elapsed time (and the estimate left), then ``extra`` columns
    (a string is a ``TextColumn`` template such as ``"{task.fields[best]}"``); on stderr so that a
    command's stdout stays its result."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if remaining:
        columns.append(TimeRemainingColumn())
    columns += [TextColumn(column) if isinstance(column, str) else column for column in extra]
    return Progress(*columns, console=Console(stderr=stderr), transient=transient)
