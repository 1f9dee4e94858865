"""Read a ``G4Step``'s energy deposit and post-step position without the Python bindings.

The scorer runs once per charged step in active material; through the bindings each step
costs four wrapped calls (~3 us), more than Geant4's own work in a thin silicon layer. The
same values lie at fixed offsets of the C++ objects: ``G4Step`` starts with
``fTotalEnergyDeposit`` and holds ``fpPostStepPoint`` at byte 24; ``G4StepPoint`` starts with
``fPosition``. pybind11 keeps the C++ pointer of these wrappers behind one indirection at byte
16 of the Python object. Reading them with :mod:`ctypes` costs ~0.5 us.

These offsets belong to the pinned ``geant4-pybind`` build (as do the symbols of
:mod:`caloforge.simulate.emphysics`). They are never trusted blindly: a :class:`StepReader`
starts on the bindings and, with the pinned wheel only, compares both paths on the first
steps of a run; only if every value agrees bit for bit does it switch to direct reads,
otherwise it stays on the bindings.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)

_P = ctypes.c_size_t  # pointers read as integers (a c_void_p would give None for null)
_D = ctypes.c_double
PYBIND_VALUE_OFFSET = 16  # pybind11 instance: PyObject header, then the values-and-holders
STEP_EDEP_OFFSET = 0  # G4Step::fTotalEnergyDeposit
STEP_POST_POINT_OFFSET = 24  # G4Step::fpPostStepPoint
POINT_POSITION_OFFSET = 0  # G4StepPoint::fPosition
VALIDATION_STEPS = 200
PINNED_WHEEL = "0.1.3"  # the geant4-pybind build these offsets belong to


class _Vector(ctypes.Structure):
    _fields_ = (("x", ctypes.c_double), ("y", ctypes.c_double), ("z", ctypes.c_double))


def step_pointer(step: Any) -> int:
    """Address of the C++ ``G4Step`` behind a pybind11 wrapper."""
    return _P.from_address(_P.from_address(id(step) + PYBIND_VALUE_OFFSET).value).value


def read_direct(step: Any) -> tuple[float, float, float, float]:
    """(x, y, z, E) of the post-step point and deposit, read from memory."""
    address = step_pointer(step)
    e = _D.from_address(address + STEP_EDEP_OFFSET).value
    point = _P.from_address(address + STEP_POST_POINT_OFFSET).value
    v = _Vector.from_address(point + POINT_POSITION_OFFSET)
    return v.x, v.y, v.z, e


def read_bindings(step: Any) -> tuple[float, float, float, float]:
    """(x, y, z, E) through the Python bindings."""
    p = step.GetPostStepPoint().GetPosition()
    return p.x, p.y, p.z, step.GetTotalEnergyDeposit()


class StepReader:
    """Decides, per run, whether direct reads agree with the bindings.

    Attributes:
        direct: True once :data:`VALIDATION_STEPS` steps agreed; read with :func:`read_direct`.
    """

    def __init__(self, *, allow_direct: bool = True) -> None:
        from importlib.metadata import version

        self.direct = False
        # Another build could crash on the very first direct read: never try it there.
        pinned = version("geant4-pybind") == PINNED_WHEEL
        self.checked = 0 if allow_direct and pinned else -1

    def validate(self, step: Any, expected: tuple[float, float, float, float]) -> None:
        """Compare a step read through the bindings with a direct read."""
        if self.checked < 0:
            return
        if read_direct(step) != expected:
            self.checked = -1
            log.warning("direct G4Step reads disagree with the bindings: scoring stays slower")
            return
        self.checked += 1
        if self.checked >= VALIDATION_STEPS:
            self.direct = True
            self.checked = -1
