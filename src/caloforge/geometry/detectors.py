"""The detector catalog: layered barrel calorimeters described in YAML.

A detector is a barrel (a cylinder shell coaxial with the beam line) of ``n_layers`` identical
layers, each a sequence of slices (material, thickness, active or passive), starting at
``inner_radius_mm``. Built-in detectors live in ``caloforge/geometry/detectors/*.yaml``; users
pass their own file with the same schema. Materials are Geant4 NIST names (``G4_W``,
``G4_PbWO4``, ...). Radiation length and Moliere radius are never typed in: they are computed
from the materials (:mod:`caloforge.simulate.materials`). The sampling fraction is measured
with Geant4 (``caloforge calibrate``) and kept here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from caloforge.errors import DetectorError


@dataclass(frozen=True)
class Slice:
    """One slab of a layer."""

    material: str  # Geant4 NIST material name
    thickness_mm: float
    active: bool  # energy deposited here is read out


@dataclass(frozen=True)
class SamplingFraction:
    """Active / (active + passive) deposited energy, measured with Geant4."""

    value: float
    error: float
    measured_with: str  # the command that reproduces the measurement


@dataclass(frozen=True)
class DetectorSpec:
    """A layered barrel calorimeter."""

    name: str
    description: str
    source: str  # where the layer structure comes from
    inner_radius_mm: float
    length_mm: float
    n_layers: int
    slices: tuple[Slice, ...]
    sampling_fraction: SamplingFraction | None = None

    @property
    def layer_thickness_mm(self) -> float:
        return sum(s.thickness_mm for s in self.slices)

    @property
    def depth_mm(self) -> float:
        return self.n_layers * self.layer_thickness_mm

    @property
    def outer_radius_mm(self) -> float:
        return self.inner_radius_mm + self.depth_mm

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_TOP_KEYS = {
    "name",
    "description",
    "source",
    "inner_radius_mm",
    "length_mm",
    "n_layers",
    "slices",
    "sampling_fraction",
}
_SLICE_KEYS = {"material", "thickness_mm", "active"}
_SF_KEYS = {"value", "error", "measured_with"}


def _positive(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectorError(f"{where}: {what} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise DetectorError(f"{where}: {what} must be positive and finite, got {value!r}")
    return float(value)


def _check_keys(data: dict[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise DetectorError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    missing = required - set(data)
    if missing:
        raise DetectorError(f"{where}: missing key(s) {sorted(missing)}")


def detector_from_dict(data: Any, where: str = "detector") -> DetectorSpec:
    """Validate a parsed YAML mapping and build a :class:`DetectorSpec`.

    Raises:
        DetectorError: on unknown or missing keys and invalid values.
    """
    if not isinstance(data, dict):
        raise DetectorError(f"{where}: expected a mapping of detector fields")
    _check_keys(data, _TOP_KEYS, _TOP_KEYS - {"sampling_fraction", "description", "source"}, where)
    raw_slices = data["slices"]
    if not isinstance(raw_slices, list) or not raw_slices:
        raise DetectorError(f"{where}: 'slices' must be a non-empty list")
    slices = []
    for i, raw in enumerate(raw_slices):
        at = f"{where}: slice {i}"
        if not isinstance(raw, dict):
            raise DetectorError(f"{at}: expected a mapping with {sorted(_SLICE_KEYS)}")
        _check_keys(raw, _SLICE_KEYS, _SLICE_KEYS, at)
        if not isinstance(raw["material"], str) or not isinstance(raw["active"], bool):
            raise DetectorError(f"{at}: 'material' must be a string and 'active' true or false")
        slices.append(
            Slice(
                raw["material"], _positive(raw["thickness_mm"], "thickness_mm", at), raw["active"]
            )
        )
    if not any(s.active for s in slices):
        raise DetectorError(f"{where}: at least one slice must be active")
    n_layers = data["n_layers"]
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise DetectorError(f"{where}: n_layers must be a positive integer, got {n_layers!r}")
    sf = None
    if data.get("sampling_fraction") is not None:
        raw_sf = data["sampling_fraction"]
        if not isinstance(raw_sf, dict):
            raise DetectorError(f"{where}: sampling_fraction must be a mapping {sorted(_SF_KEYS)}")
        _check_keys(raw_sf, _SF_KEYS, _SF_KEYS, f"{where}: sampling_fraction")
        value = _positive(raw_sf["value"], "sampling_fraction.value", where)
        if value > 1:
            raise DetectorError(f"{where}: sampling_fraction.value must be <= 1, got {value}")
        error = raw_sf["error"]
        if isinstance(error, bool) or not isinstance(error, int | float) or not 0 <= error < 1:
            raise DetectorError(
                f"{where}: sampling_fraction.error must be in [0, 1), got {error!r}"
            )
        sf = SamplingFraction(value, float(error), str(raw_sf["measured_with"]))
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise DetectorError(f"{where}: 'name' must be a non-empty string")
    return DetectorSpec(
        name=name,
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        inner_radius_mm=_positive(data["inner_radius_mm"], "inner_radius_mm", where),
        length_mm=_positive(data["length_mm"], "length_mm", where),
        n_layers=n_layers,
        slices=tuple(slices),
        sampling_fraction=sf,
    )


def _builtin_dir() -> Any:
    return resources.files("caloforge.geometry").joinpath("detectors")


def builtin_detector_names() -> list[str]:
    """Names of the detectors shipped with caloforge, sorted."""
    return sorted(
        p.name[: -len(".yaml")] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml")
    )


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DetectorError(f"{where}: not valid YAML ({exc.__class__.__name__})") from exc


def load_detector(name_or_path: str) -> DetectorSpec:
    """Load a built-in detector by name, or a user detector from a YAML file.

    Raises:
        DetectorError: for an unknown name, an unreadable file or an invalid description.
    """
    if name_or_path in builtin_detector_names():
        text = _builtin_dir().joinpath(f"{name_or_path}.yaml").read_text()
        return detector_from_dict(_parse_yaml(text, name_or_path), name_or_path)
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DetectorError(f"cannot read detector file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise DetectorError(f"{path} is not a UTF-8 text file (a YAML detector)") from None
        return detector_from_dict(_parse_yaml(text, str(path)), str(path))
    raise DetectorError(
        f"unknown detector {name_or_path!r}; built-in detectors: "
        f"{', '.join(builtin_detector_names())} (or give a .yaml file)"
    )
