"""Process-wide backend settings, made in one place when needed and never at import."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt
