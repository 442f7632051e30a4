"""The errors a user can fix, and the exit codes the `timar` command gives them.

Every library error that means "this input cannot be used" derives from :class:`InputError`
(exit code 2); one that means "the run itself failed" from :class:`TimarError` (exit code 1).
Their messages name the file or value, the problem and the fix, so the command prints them as one
line (``timar <command>: error: <message>``) without a traceback. Each keeps the builtin base it
always had (RuntimeError or ValueError), so existing ``except`` clauses still catch it.
"""

from __future__ import annotations

USAGE = 2  # bad arguments or input: a file, a config, a value
FAILED = 1  # the run started and failed


class TimarError(Exception):
    """A failure the message explains; the `timar` command exits with :attr:`exit_code`."""

    exit_code = FAILED


class InputError(TimarError):
    """An input (argument, file, folder, config) that cannot be used as given."""

    exit_code = USAGE


def one_line(message: object) -> str:
    """A message on one line (a YAML parser's multi-line error, say), for a log or stderr."""
    return " ".join(str(message).split())
