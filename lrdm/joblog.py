"""A Snakemake job's output: everything to the rule's ``log:`` file, and the reason of a failure on the console.

A workflow script calls :func:`log_to_file` first. Its prints, its warnings and the ``logging`` records of the
package (INFO and above, e.g. the trainer's progress lines) go to the log file, line by line, so ``tail -f`` follows
a running job (on SLURM too). If the script then fails, the full traceback goes to the log and one line, the
error's own message and the log's path, to the job's console (``sys.__stderr__``: the terminal of a local run,
the job's output file under SLURM), so that the reason is on screen without opening the log.
Torch-free.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TextIO

from lrdm.errors import LrdmError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_PREFIX = "lrdm job: error"
REFUSED_EXIT = 2
"""Exit status of a module's command line (``python -m lrdm.…``) that refused its input, as argparse's own."""


def error_line(error: BaseException, log_path: str) -> str:
    """The one line a failed job shows on the console: the project's own errors (and ``ValueError`` /
    ``OSError``, which name their key or file) by their message, any other by type and message; then the log."""
    message = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (LrdmError, ValueError, OSError)):
        message = f"{type(error).__name__}: {message}"
    return f"{CONSOLE_PREFIX}: {message} (traceback in {log_path})"


def _report_failure(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None, console: TextIO, log_path: str
) -> None:
    """``sys.excepthook`` of a job: the traceback to the log (current ``sys.stderr``), one line to ``console``."""
    traceback.print_exception(kind, error, tb, file=sys.stderr)
    sys.stderr.flush()
    if not issubclass(kind, KeyboardInterrupt):
        print(error_line(error, log_path), file=console, flush=True)


def log_to_file(log_files: Iterable[str]) -> None:
    """Sends a Snakemake script's stdout, stderr (warnings too) and ``logging`` to the rule's first log file, and
    reports an uncaught error on the console in one line (module docstring)."""
    path = next(iter(log_files), None)
    if path is None:
        return
    handle = open(path, "w", buffering=1)  # noqa: SIM115 - the job's output until it exits
    sys.excepthook = functools.partial(_report_failure, console=sys.__stderr__, log_path=path)
    sys.stdout = sys.stderr = handle
    logging.basicConfig(stream=handle, level=logging.INFO, format=LOG_FORMAT, force=True)


def command_status(prog: str, command: Callable[[], int]) -> int:
    """Runs a module's command line (``python -m lrdm.…``, named ``prog``) and returns its exit status: the
    command's own, or :data:`REFUSED_EXIT` with one line ``<prog>: error: …`` on stderr when it raises an
    :class:`OSError` or one of the project's errors (they name their file or key)."""
    try:
        return command()
    except (OSError, LrdmError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return REFUSED_EXIT
