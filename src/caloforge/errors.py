"""Exception types raised by the library; a front end (the CLI) turns them into one line.

Library errors speak of the problem in domain terms (the energy, the file, the model), never of
command-line flags. Two optional fields let a front end name its own options:

- ``subject``: the setting at fault, by its library name (``"energy"``, ``"chunk_size"``); the
  message then starts with that name, which the CLI replaces by its option (``--energy``).
- ``override``: the setting that would allow what was refused (``"overwrite"``,
  ``"allow_extrapolation"``), with what it would do (``action``); the CLI says which flag.
"""

from __future__ import annotations


class CaloforgeError(Exception):
    """Base class of every error caused by user input (files, specs, options).

    Args:
        message: the problem in domain terms; with a ``subject``, without the subject's name
            (it is prefixed).
        subject: library name of the setting at fault (e.g. ``"energy"``).
        override: library name of the setting that would allow it (e.g. ``"overwrite"``).
        action: what ``override`` does, completing "pass it to ..." (e.g. ``"replace it"``).
    """

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        override: str | None = None,
        action: str = "allow it",
    ) -> None:
        self.detail = message
        self.subject = subject
        self.override = override
        self.action = action
        super().__init__(self.describe())

    def describe(self) -> str:
        """The message with the library names (a front end composes its own from the fields)."""
        text = self.detail if self.subject is None else f"{self.subject} {self.detail}"
        if self.override is not None:
            text += f" (pass {self.override}=True to {self.action})"
        return text


class SpecError(CaloforgeError):
    """A malformed or out-of-range specification (an option, a YAML setting, a condition)."""


class DetectorError(CaloforgeError):
    """An unknown detector or an invalid detector description."""


class DataError(CaloforgeError):
    """A missing, unreadable, corrupt or foreign data file."""


class OutputError(CaloforgeError):
    """An output that cannot be written."""
