"""The `anydepth-edge` command line: one verb per job. Verbs parse options (choices are enums, so
`--help` lists them) and call the stage packages, which do the work.

Heavy imports (torch, onnx, tensorrt, cv2) happen inside the verbs that need them, so
`anydepth-edge --help` and the on-robot verbs start without PyTorch. Python 3.8 compatible
(JetPack 5): typer evaluates these annotations, so they use typing.List / Optional.
"""

import sys
from typing import List, Optional

from anydepth_edge.cli import model_verbs, robot_verbs  # noqa: F401  (each registers its verbs on `app`, in order)
from anydepth_edge.cli.common import _click_exceptions, _plain_help_when_narrow, _readable_metavars, app
from anydepth_edge.console import error_line, interrupt_on_sigterm
from anydepth_edge.errors import UserError

__all__ = ["app", "main"]

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user errors and bad options become one line on stderr and a non-zero exit."""
    usage_error, click_exception, abort = _click_exceptions()
    interrupt_on_sigterm()
    _readable_metavars()
    _plain_help_when_narrow()
    try:
        code = app(args=argv, prog_name="anydepth-edge", standalone_mode=False)
    except UserError as e:
        error_line(str(e))
        sys.exit(e.exit_code)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help was printed
        verb = e.ctx.command_path if getattr(e, "ctx", None) is not None else "anydepth-edge"
        error_line(f"{e.format_message().replace('Value error, ', '')} (see {verb} --help)")
        sys.exit(2)
    except click_exception as e:
        error_line(e.format_message())
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, abort):
        error_line("interrupted")
        sys.exit(INTERRUPTED)
    except MemoryError:
        error_line("out of memory: use a smaller --res, or close other programs")
        sys.exit(1)
    except OSError as e:  # a full disk, a permission, a vanished file: say which, no traceback
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        error_line(f"{e.strerror or e}{where}")
        sys.exit(1)
    if code == INTERRUPTED:  # typer turns Ctrl-C inside a verb into Exit(130) before it reaches us
        error_line("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
