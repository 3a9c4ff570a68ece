"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or a missing prerequisite; the message says what to do."""

    exit_code = 2


class HardwareMissing(UserError):
    """The job needs hardware or a runtime this host does not have (TensorRT, a GPU, a camera)."""

    exit_code = 3


class NothingToDo(UserError):
    """No artifact matches the request (no export for this TensorRT, say): distinct from a failure,
    so the container entrypoint can go on without an engine."""

    exit_code = 4
