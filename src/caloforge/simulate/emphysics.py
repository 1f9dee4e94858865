"""An electromagnetic physics constructor that needs no Geant4 data files.

``G4EmStandardPhysics`` cannot run without data (Seltzer-Berger bremsstrahlung tables,
Livermore photo-effect, level data). This constructor registers, for gamma, e- and e+, the
processes whose models are analytic or use built-in tables:

==========  ==========================  ====================================================
particle    process                     model
==========  ==========================  ====================================================
gamma       photoelectric effect        G4PEEffectFluoModel (Sandia tables; no fluorescence)
gamma       Compton scattering          G4KleinNishinaCompton
gamma       conversion                  G4BetheHeitler5D below 80 GeV, G4PairProductionRelModel
e-, e+      multiple scattering         G4UrbanMsc over the whole range
e-, e+      ionisation                  G4MollerBhabha
e-, e+      bremsstrahlung              G4eBremsstrahlungRelModel over the whole range
e+          annihilation                G4eeToTwoGammaModel
==========  ==========================  ====================================================

Differences from ``G4EmStandardPhysics`` (option 0): bremsstrahlung below 1 GeV uses the
relativistic model with LPM instead of Seltzer-Berger; the photo-effect uses the Sandia
parametrisation instead of Livermore; multiple scattering above 100 MeV stays Urban instead of
WentzelVI + single Coulomb scattering; no Rayleigh scattering, fluorescence, Auger or
photonuclear processes. None of these change EM shower shapes in a calorimeter appreciably.

The Python bindings expose none of these process classes, but the wheel's shared object
exports their C++ constructors, which this module calls through :mod:`ctypes`. It depends on
the exact build of ``geant4-pybind`` pinned in ``pyproject.toml`` (its mangled names and the
libstdc++ ``std::string`` layout of the new ABI); :func:`check_symbols` is run by the tests on
every CI run so that a different wheel fails loudly instead of crashing.
"""

from __future__ import annotations

import ctypes
from typing import Any

from caloforge.simulate.g4 import geant4

# C++ entry points, by their Itanium-mangled names in geant4-pybind 0.1.3 (Geant4 11.4).
_SYMBOLS = {
    "helper": "_ZN19G4PhysicsListHelper20GetPhysicsListHelperEv",
    "register": "_ZN19G4PhysicsListHelper15RegisterProcessEP10G4VProcessP20G4ParticleDefinition",
    "gamma": "_ZN7G4Gamma10DefinitionEv",
    "electron": "_ZN10G4Electron10DefinitionEv",
    "positron": "_ZN10G4Positron10DefinitionEv",
    "phot": "_ZN21G4PhotoElectricEffectC1ERK8G4String13G4ProcessType",
    "compt": "_ZN19G4ComptonScatteringC1ERK8G4String13G4ProcessType",
    "conv": "_ZN17G4GammaConversionC1ERK8G4String13G4ProcessType",
    "msc": "_ZN21G4eMultipleScatteringC1ERK8G4String",
    "eIoni": "_ZN13G4eIonisationC1ERK8G4String",
    "eBrem": "_ZN17G4eBremsstrahlungC1ERK8G4String",
    "annihil": "_ZN19G4eplusAnnihilationC1ERK8G4String",
    "brem_rel_model": "_ZN25G4eBremsstrahlungRelModelC1EPK20G4ParticleDefinitionRK8G4String",
    "set_eloss_model": "_ZN20G4VEnergyLossProcess10SetEmModelEP10G4VEmModeli",
}
_F_ELECTROMAGNETIC = 2  # G4ProcessType::fElectromagnetic
# Bytes reserved for each object; every class here is well under 2 KiB in Geant4 11.
_OBJECT_BYTES = 8192
_P = ctypes.c_void_p


def _library() -> ctypes.CDLL:
    return ctypes.CDLL(geant4().__file__)


def check_symbols() -> list[str]:
    """Return the names of the C++ entry points missing from the installed wheel (none if fine)."""
    lib = _library()
    return [name for name, symbol in _SYMBOLS.items() if not hasattr(lib, symbol)]


class _StdString(ctypes.Structure):
    """libstdc++ ``std::string`` (new ABI, 32 bytes) holding a short string in place."""

    _fields_ = (("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t), ("buf", ctypes.c_char * 16))

    def __init__(self, text: str) -> None:
        data = text.encode()
        if len(data) > 15:
            raise ValueError("only short strings (< 16 bytes) are built in place")
        super().__init__(None, len(data), data)
        self.ptr = ctypes.addressof(self) + _StdString.buf.offset


class _Cxx:
    """Typed access to the exported C++ functions and in-place object construction."""

    def __init__(self) -> None:
        self.lib = _library()
        self.libc = ctypes.CDLL(None)
        self.libc.calloc.restype = _P
        self.libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        self.keep: list[Any] = []

    def function(self, key: str, restype: Any, argtypes: list[Any]) -> Any:
        f = getattr(self.lib, _SYMBOLS[key])
        f.restype = restype
        f.argtypes = argtypes
        return f

    def construct(self, key: str, argtypes: list[Any], *args: Any) -> int:
        """Allocate zeroed memory with malloc (so ``delete`` may free it) and run a constructor."""
        memory = self.libc.calloc(1, _OBJECT_BYTES)
        self.function(key, None, [_P, *argtypes])(memory, *args)
        return int(memory)

    def string(self, text: str) -> int:
        s = _StdString(text)
        self.keep.append(s)  # the constructors copy the name, but keep it alive for the call
        return ctypes.addressof(s)


def make_em_physics() -> Any:
    """Build the data-free EM physics constructor (a ``G4VPhysicsConstructor``)."""
    g4: Any = geant4()

    class DataFreeEmPhysics(g4.G4VPhysicsConstructor):
        def __init__(self) -> None:
            super().__init__("caloforge-em")

        def ConstructParticle(self) -> None:
            g4.G4Gamma.GammaDefinition()
            g4.G4Electron.ElectronDefinition()
            g4.G4Positron.PositronDefinition()

        def ConstructProcess(self) -> None:
            construct_processes()

    return DataFreeEmPhysics()


def construct_processes() -> None:
    """Create the processes and register them with the ``G4PhysicsListHelper``."""
    cxx = _Cxx()
    helper = cxx.function("helper", _P, [])()
    register = cxx.function("register", ctypes.c_bool, [_P, _P, _P])
    gamma, electron, positron = (
        cxx.function(k, _P, [])() for k in ("gamma", "electron", "positron")
    )
    set_model = cxx.function("set_eloss_model", None, [_P, _P, ctypes.c_int])

    def process(key: str, *, typed: bool = False) -> int:
        if typed:
            return cxx.construct(key, [_P, ctypes.c_int], cxx.string(key), _F_ELECTROMAGNETIC)
        return cxx.construct(key, [_P], cxx.string(key))

    for key in ("phot", "compt", "conv"):
        register(helper, process(key, typed=True), gamma)
    for particle in (electron, positron):
        register(helper, process("msc"), particle)
        register(helper, process("eIoni"), particle)
        brem = process("eBrem")
        # G4eBremsstrahlung uses model 0 below 1 GeV (Seltzer-Berger by default, which needs
        # data) and model 1 above: both become the relativistic model.
        for index in (0, 1):
            model = cxx.construct("brem_rel_model", [_P, _P], None, cxx.string("eBremLPM"))
            set_model(brem, model, index)
        register(helper, brem, particle)
    register(helper, process("annihil"), positron)
