"""One place for user-facing output: rich on stderr for messages, stdout for results."""

import signal
import sys

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
# Piped or logged output: wide enough that tables do not wrap (rich assumes 80 columns off a TTY).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def info(msg: str) -> None:
    err.print(f"[cyan]info[/]: {msg}")


def warn(msg: str) -> None:
    err.print(f"[bold yellow]warning[/]: {msg}")


def error_line(msg: str) -> None:
    # Plain text (no markup parsing) so paths with brackets print as they are.
    err.print("[bold red]error[/]: ", end="")
    err.print(msg, markup=False)


def progress(transient: bool = True):
    """A progress display for slow steps (stderr, so JSON on stdout stays clean)."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=transient,
    )


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd) unwinds like Ctrl-C: temporary files are removed, child
    processes stopped, the exit is one line. `run` installs its own handler (a clean stop)."""
    signal.signal(signal.SIGTERM, _interrupt)
