"""One place for user-facing output: rich on stderr for messages, stdout for results.

Messages carry user text (paths, URLs, `--serve 0.0.0.0:abc:`), so the text after the coloured
label is printed as text: no markup, no emoji codes. Each warning is printed once per process.
"""

import signal
import sys

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
# Piped or logged output: wide enough that tables do not wrap (rich assumes 80 columns off a TTY).
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)
_warned = set()


def _line(label: str, msg: str) -> None:
    err.print(label, end="")
    err.print(str(msg), markup=False)


def info(msg: str) -> None:
    _line("[cyan]info[/]: ", msg)


def warn(msg: str) -> None:
    if msg in _warned:  # e.g. "random weights" once, not once per exported model
        return
    _warned.add(msg)
    _line("[bold yellow]warning[/]: ", msg)


def error_line(msg: str) -> None:
    _line("[bold red]error[/]: ", msg)


def progress(transient: bool = True):
    """A progress display for slow steps: description, bar, done/total, elapsed and the estimate of
    what is left. On stderr (JSON on stdout stays clean); silent when stderr is not a terminal (a log
    or CI gets the results, not redraws)."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=not err.is_terminal,
    )


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd) unwinds like Ctrl-C: temporary files are removed, child
    processes stopped, the exit is one line. `run` installs its own handler (a clean stop)."""
    signal.signal(signal.SIGTERM, _interrupt)
