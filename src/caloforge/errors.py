"""Exception types raised by the library; the CLI turns them into one-line messages."""

from __future__ import annotations


class CaloforgeError(Exception):
    """Base class of every error caused by user input (files, specs, options)."""


class SpecError(CaloforgeError):
    """A malformed or out-of-range command-line or YAML specification."""


class DetectorError(CaloforgeError):
    """An unknown detector or an invalid detector description."""


class DataError(CaloforgeError):
    """A missing, unreadable, corrupt or foreign data file."""


class OutputError(CaloforgeError):
    """An output that cannot be written."""
