"""One place for user-facing output: rich on stderr for messages, stdout for results.

Messages carry user text (paths, URLs, `--serve 0.0.0.0:abc:`), so the text after the coloured
label is printed as text: no markup, no emoji codes. Each warning is printed once per process.
"""

import signal
import sys
import time

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


class StepLog:
    """Progress off a terminal (a log, `make`, CI): one `info:` line each time a step's description
    changes, with the seconds since the start; no redraws, no per-iteration lines. The subset of
    rich's Progress that the commands use."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.start = clock()
        self.steps = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def add_task(self, description: str, total=None, **_) -> int:
        self.steps[len(self.steps)] = description
        return len(self.steps) - 1

    def update(self, task: int, description=None, **_) -> None:
        if description is not None and description != self.steps[task]:
            self.steps[task] = description
            info(f"{description} ({self.clock() - self.start:.0f} s)")

    def advance(self, task: int, advance: float = 1) -> None:
        pass


def progress(transient: bool = True):
    """A progress display for slow steps: description, bar, done/total, elapsed and the estimate of
    what is left, on stderr (JSON on stdout stays clean). Off a terminal, a StepLog: a log or CI
    gets a line per step, not redraws."""
    if not err.is_terminal:
        return StepLog()
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
    )


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd) unwinds like Ctrl-C: temporary files are removed, child
    processes stopped, the exit is one line. `run` installs its own handler (a clean stop)."""
    signal.signal(signal.SIGTERM, _interrupt)
