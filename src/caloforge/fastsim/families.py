"""Model families: what networks a pipeline holds and how they are built from its record.

A family is named in ``model.json`` (:class:`~caloforge.fastsim.record.ModelRecord`); it fixes
the pipeline's parts (one network each) and how sampling chains them. Backbones come from
the preset registry (:mod:`caloforge.models.registry`), wrapped in EDM preconditioning.

To add a family: an entry in :data:`FAMILIES`, its generation in
:meth:`caloforge.fastsim.model.FastSimModel.generate`, and its training in
:mod:`caloforge.fastsim.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caloforge.data.transforms import Preprocessing
from caloforge.diffusion.precond import EDMPrecond
from caloforge.errors import DataError
from caloforge.fastsim.record import ModelRecord, NetworkRecord
from caloforge.models.registry import build_model


@dataclass(frozen=True)
class ModelFamily:
    """A kind of pipeline.

    Attributes:
        name: its name in ``model.json``.
        parts: the names of its networks, in sampling order.
        description: one line for users.
    """

    name: str
    parts: tuple[str, ...]
    description: str


CALODIT = "calodit"
FACTORIZED = "factorized"

FAMILIES: dict[str, ModelFamily] = {
    CALODIT: ModelFamily(
        CALODIT,
        ("shower",),
        "one CaloDiT EDM denoiser of the preprocessed voxel energies, conditioned on energy, "
        "angles and detector",
    ),
    FACTORIZED: ModelFamily(
        FACTORIZED,
        ("energy", "shape"),
        "energy apart from shape: an EDM denoiser of the layer energies, then a CaloDiT of "
        "the within-layer fractions conditioned on them; each layer rescaled to its energy",
    ),
}


def family_of(record: ModelRecord) -> ModelFamily:
    """The family of a record, checked against the record's networks.

    Raises:
        DataError: for an unknown family or networks that are not its parts.
    """
    family = FAMILIES.get(record.family)
    if family is None:
        raise DataError(
            f"unknown model family {record.family!r} (this caloforge knows "
            f"{', '.join(sorted(FAMILIES))}); a newer caloforge may read it"
        )
    if set(record.networks) != set(family.parts):
        raise DataError(
            f"a {family.name} model has the networks {', '.join(family.parts)}, "
            f"not {', '.join(sorted(record.networks)) or 'none'}"
        )
    return family


def voxel_part(family: str) -> str:
    """The part of a family that generates the voxels (the last one sampled)."""
    return FAMILIES[family].parts[-1]


def network_shape(family: str, part: str, preprocessing: Preprocessing) -> dict[str, Any]:
    """What a part's backbone must fit: its input shape and condition width."""
    n_cond, mesh = preprocessing.conditions.n_cond, tuple(preprocessing.mesh_shape)
    if family == FACTORIZED and part == "energy":  # the layer transform's code
        width = preprocessing.layers.width if preprocessing.layers is not None else mesh[0]
        return {"dim": width, "n_cond": n_cond}
    if family == FACTORIZED:  # the shape model also sees the layer conditions
        channels = preprocessing.fractions.channels if preprocessing.fractions is not None else 1
        layers = preprocessing.layers.cond_width if preprocessing.layers is not None else mesh[0]
        return {"mesh_shape": mesh, "n_cond": n_cond + layers, "channels": channels}
    return {"mesh_shape": mesh, "n_cond": n_cond}


def build_network(
    family: str, part: str, network: NetworkRecord, preprocessing: Preprocessing
) -> EDMPrecond:
    """A freshly initialised network: its backbone preset in EDM preconditioning.

    Raises:
        SpecError: for an unknown preset or option.
    """
    shape = network_shape(family, part, preprocessing)
    backbone = build_model(network.preset, **{**shape, **network.options})
    return EDMPrecond(backbone, sigma_data=network.sigma_data)


def build_networks(record: ModelRecord) -> dict[str, EDMPrecond]:
    """Every network of a record, freshly initialised, by part name."""
    family = family_of(record)
    return {
        part: build_network(family.name, part, record.networks[part], record.preprocessing)
        for part in family.parts
    }
