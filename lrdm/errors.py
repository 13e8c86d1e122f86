"""Errors of bad input data (light: no torch import, so the downloader can use them)."""

from __future__ import annotations


class DataError(ValueError):
    """Base class for data problems (bad files, bad indexes, bad sizes)."""


class ImageReadError(DataError):
    """An image file exists but cannot be decoded or has an unsupported pixel mode."""


class IndexSchemaError(DataError):
    """An index file lacks required columns or has inconsistent content."""


class ChecksumError(DataError):
    """A file's sha256 differs from the one recorded in the index."""
