"""Radiation length, Moliere radius and critical energy of detectors, from Geant4's NIST materials.

Per material (PDG Review, "Passage of particles through matter"):

* X0 is Geant4's ``G4Material::GetRadlen`` (Tsai's formula, per element ``fRadTsai``).
* The critical energy of element i is Rossi's definition fitted by the PDG,
  E_c = 610 MeV / (Z + 1.24) for solids and liquids, 710 MeV / (Z + 0.92) for gases.
* The Moliere radius follows 1/R_M = (1/E_s) sum_i E_c,i / X0,i over the elements, where
  1/X0,i = n_i fRadTsai_i is element i's share of 1/X0 and E_s = 21.2052 MeV.

A layered detector is a mixture by volume of its slices: 1/X0 = sum_k f_k / X0,k and
1/R_M = sum_k f_k / R_M,k with f_k the thickness fraction of slice k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caloforge.errors import DetectorError
from caloforge.geometry.detectors import DetectorSpec
from caloforge.geometry.mesh import (
    REFERENCE_DETECTOR,
    REFERENCE_N_PHI,
    REFERENCE_N_R,
    REFERENCE_N_Z,
    MeshSpec,
)
from caloforge.simulate.g4 import geant4

E_S_MEV = 21.2052  # scale energy m_e c^2 sqrt(4 pi / alpha), PDG


@dataclass(frozen=True)
class MaterialProperties:
    """Electromagnetic properties of one material or of a whole detector (lengths in mm)."""

    x0_mm: float  # radiation length
    moliere_radius_mm: float


def find_material(name: str) -> Any:
    """Return the Geant4 NIST material called ``name``.

    Raises:
        DetectorError: if Geant4 does not know the material.
    """
    g4 = geant4()
    material = g4.G4NistManager.Instance().FindOrBuildMaterial(name, False)
    if material is None:
        raise DetectorError(
            f"unknown material {name!r}: use a Geant4 NIST material name such as G4_W or G4_PbWO4"
        )
    return material


def material_properties(name: str) -> MaterialProperties:
    """X0 and Moliere radius of a Geant4 NIST material."""
    g4 = geant4()
    material = find_material(name)
    gas = material.GetState() == g4.G4State.kStateGas
    inverse_rm = 0.0
    atoms_per_volume = material.GetVecNbOfAtomsPerVolume()
    for i, element in enumerate(material.GetElementVector()):
        z = element.GetZ()
        critical = 710.0 / (z + 0.92) if gas else 610.0 / (z + 1.24)  # MeV, PDG fits
        inverse_rm += critical * atoms_per_volume[i] * element.GetfRadTsai() / E_S_MEV
    return MaterialProperties(
        x0_mm=material.GetRadlen() / g4.mm, moliere_radius_mm=(1.0 / inverse_rm) / g4.mm
    )


def detector_properties(spec: DetectorSpec) -> MaterialProperties:
    """Effective X0 and Moliere radius of a detector's layer structure."""
    total = spec.layer_thickness_mm
    inv_x0 = inv_rm = 0.0
    for s in spec.slices:
        props = material_properties(s.material)
        fraction = s.thickness_mm / total
        inv_x0 += fraction / props.x0_mm
        inv_rm += fraction / props.moliere_radius_mm
    return MaterialProperties(x0_mm=1.0 / inv_x0, moliere_radius_mm=1.0 / inv_rm)


def detector_mesh(
    spec: DetectorSpec, counts: tuple[int, int, int] | None = None
) -> tuple[MeshSpec, MaterialProperties]:
    """The scoring mesh of a detector (the reference extent in its X0 and R_M) and its properties."""
    from caloforge.geometry.detectors import load_detector

    props = detector_properties(spec)
    ref = props if spec.name == REFERENCE_DETECTOR else detector_properties(load_detector(REFERENCE_DETECTOR))  # fmt: skip
    counts = counts or (REFERENCE_N_Z, REFERENCE_N_PHI, REFERENCE_N_R)
    mesh = MeshSpec.scaled(props.x0_mm, props.moliere_radius_mm, ref.x0_mm, ref.moliere_radius_mm, counts)  # fmt: skip
    return mesh, props


CATALOG_COLUMNS = (
    "name",
    "layers (* active)",
    "depth",
    "X0",
    "R_M",
    "depth/X0",
    "sampling fraction",
    "mesh dz x dr",
)
"""The columns of :func:`catalog_row`."""


def catalog_row(spec: DetectorSpec) -> tuple[str, ...]:
    """One detector as a row of the catalog (:data:`CATALOG_COLUMNS`): its layers, depth, X0
    and Molière radius from Geant4's NIST materials, sampling fraction and mesh cells."""
    mesh, props = detector_mesh(spec)
    slices = " + ".join(
        f"{s.thickness_mm:g} mm {s.material.removeprefix('G4_')}{'*' if s.active else ''}"
        for s in spec.slices
    )
    sf = spec.sampling_fraction
    return (
        spec.name,
        f"{spec.n_layers} x ({slices})",
        f"{spec.depth_mm:.1f} mm",
        f"{props.x0_mm:.2f} mm",
        f"{props.moliere_radius_mm:.2f} mm",
        f"{spec.depth_mm / props.x0_mm:.1f}",
        f"{sf.value:.5f} +- {sf.error:.5f}" if sf else "not measured",
        f"{mesh.dz_mm:.2f} x {mesh.dr_mm:.2f} mm",
    )
