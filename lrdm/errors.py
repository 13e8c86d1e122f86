"""The project's errors: one hierarchy, torch-free, so every layer (the downloader included) raises and
catches the same classes.

``LrdmError`` is the root. Each subclass also derives from the built-in error it refines (``ValueError``
for bad values and bad data, ``RuntimeError`` for failed downloads, ``FloatingPointError`` for a diverged
run), so callers that catch the built-in keep working.
"""

from __future__ import annotations

STOPPED_EXIT = 75
"""Exit status of ``lrdm train`` (and of a Snakemake ``train`` job) stopped by a signal after writing its checkpoint:
sysexits.h's EX_TEMPFAIL, "a temporary failure; the user is invited to retry": the next run resumes there. Snakemake's
``retries`` resubmit any failed job; a SLURM cluster may also requeue by it (``RequeueExit=75`` in slurm.conf)."""


class LrdmError(Exception):
    """Root of every error this package raises on purpose."""


TOP_LEVEL_KEY = "(top level)"
"""The ``key`` of a :class:`ConfigError` about a config (or registry) file as a whole, e.g. one that is no mapping."""


class ConfigError(LrdmError, ValueError):
    """A config value is invalid; the message names the key, also kept as ``key`` (dotted for a nested one,
    :data:`TOP_LEVEL_KEY` for the file as a whole)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(LrdmError, ValueError):
    """Bad input data: unreadable files, inconsistent indexes, mismatched pairs or sizes."""


class ImageReadError(DataError):
    """An image file exists but cannot be decoded or has an unsupported pixel mode."""


class IndexSchemaError(DataError):
    """An index file lacks required columns or has inconsistent content."""


class ChecksumError(DataError):
    """A file's sha256 (or size) differs from the recorded one: an index entry, a download or a file placed
    by hand."""


class UnsafeArchiveError(DataError):
    """An archive member would escape the extraction folder, or is a device or fifo."""


class DownloadError(LrdmError, RuntimeError):
    """An archive could not be obtained (network failure, HTTP error, missing manual file)."""


class ManualDownloadRequired(DownloadError):
    """A manual-only source (e.g. Google Drive) is missing: the user must place it by hand."""


class TrainingDiverged(LrdmError, FloatingPointError):
    """The training loss became non-finite or exploded, or the weights became non-finite; the message names
    the last good checkpoint."""


class TrainingStopped(LrdmError):
    """Training stopped on a signal (SIGTERM, SIGINT, SIGUSR1) after its optimiser step in flight and wrote a
    checkpoint there: not a failure, the next run resumes from it. Commands exit with :data:`STOPPED_EXIT`."""

    exit_status = STOPPED_EXIT


class CheckpointError(DataError):
    """A checkpoint or model file cannot be used: truncated or unreadable, refused by the safe unpickler, of a
    foreign kind, missing keys, or with a tensor of the wrong shape; the message names the file."""


class NonFiniteOutputError(LrdmError, FloatingPointError):
    """A trained network produced NaN or infinite values; the message names the model and the image."""


class DiskFullError(LrdmError, OSError):
    """A write failed for lack of space; the message names the file (its partial copy was removed)."""


class RunLockedError(LrdmError, RuntimeError):
    """Another process holds a run directory's lock; the message names the directory and the holder's PID."""


class CorruptArchiveError(DataError):
    """An archive cannot be read to its end (truncated or damaged); the message names it."""


class MemoryBudgetError(LrdmError, MemoryError):
    """A restore would not fit in the memory bound (``lrdm restore --max-memory``); the message names the image and
    the bound."""
