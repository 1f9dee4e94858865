"""What a run will need of this machine, checked before the expensive work starts.

Estimates are upper bounds where cheap to get (uncompressed sizes), so a refused run names
what it needs and what there is; a run that passes may still meet a disk filled meanwhile,
which :mod:`caloforge.atomic` reports in one line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from caloforge.errors import OutputError, SpecError

MIB = 1 << 20


def _human(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 30):.1f} GiB" if n_bytes >= 1 << 30 else f"{n_bytes / MIB:.0f} MiB"


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``, else free pages)."""
    try:
        with Path("/proc/meminfo").open() as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(n_bytes: float, what: str, *, subject: str | None = None) -> None:
    """Refuse a run whose arrays would not fit in the memory available now.

    Raises:
        SpecError: naming what needs the memory, how much, and how much there is.
    """
    free = available_memory()
    if n_bytes > free:
        raise SpecError(
            f"{what} needs about {_human(n_bytes)} of memory; {_human(free)} is available",
            subject=subject,
        )


def check_space(path: str | Path, n_bytes: float, what: str) -> None:
    """Refuse to start writing ``path`` when its file system has less than ``n_bytes`` free.

    Raises:
        OutputError: naming the output, the space it needs and the space there is.
    """
    parent = Path(path).resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    if n_bytes > free:
        raise OutputError(
            f"{what} needs up to {_human(n_bytes)} in {parent} and {_human(free)} is free"
        )


def check_seed(seed: int, *, subject: str = "seed") -> None:
    """Seeds are integers in [0, 2^63) (numpy's seed sequences take no negative ones).

    Raises:
        SpecError: for any other.
    """
    if not 0 <= seed < 2**63:
        raise SpecError(f"must be an integer in [0, 2^63), got {seed}", subject=subject)
