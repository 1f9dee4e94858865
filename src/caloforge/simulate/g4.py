"""Import Geant4 (geant4-pybind) without its data files.

The wheel asks to download data on import unless ``GEANT4_DATA_DIR`` is set, and the particle
table aborts unless ``G4ENSDFSTATEDATA`` names a directory holding ``ENSDFSTATE.dat``. Our
physics list needs neither, so both point at an empty per-user directory. This must happen
before the first import of ``geant4_pybind``, which is why every module reaches Geant4 through
:func:`geant4` and never imports the bindings directly.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from types import ModuleType


def _empty_data_dir() -> str:
    path = Path(tempfile.gettempdir()) / f"caloforge-g4data-{os.getuid()}"
    path.mkdir(exist_ok=True)
    (path / "ENSDFSTATE.dat").touch()
    return str(path)


@functools.cache
def geant4() -> ModuleType:
    """Return the ``geant4_pybind`` module, importing it once with a data-free environment."""
    data_dir = _empty_data_dir()
    os.environ.setdefault("GEANT4_DATA_DIR", data_dir)
    os.environ.setdefault("G4ENSDFSTATEDATA", data_dir)
    import geant4_pybind

    return geant4_pybind


def geant4_version() -> str:
    """Geant4 and bindings versions, e.g. ``geant4-11-04-patch-01 (geant4-pybind 0.1.3)``."""
    from importlib.metadata import version

    name = str(geant4().G4Version).replace("$Name:", "").replace("[MT]", "").strip(" $")
    return f"{name} (geant4-pybind {version('geant4-pybind')})"
