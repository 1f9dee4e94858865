"""The application layer: trained models and what is done with them.

- :mod:`~caloforge.fastsim.record`: the model directory format (``model.json``, typed).
- :mod:`~caloforge.fastsim.families`: model families, their networks and how they are built.
- :mod:`~caloforge.fastsim.model`: a loaded model and its sampling (``FastSimModel.generate``).
- :mod:`~caloforge.fastsim.fit`: training runs and their resume rules (``caloforge train``).
- :mod:`~caloforge.fastsim.sampling`: showers into a file (``caloforge sample``).
- :mod:`~caloforge.fastsim.demo`: the shipped model against shipped Geant4 showers.
"""

from __future__ import annotations

from caloforge.fastsim.model import (
    FastSimModel,
    SamplerSettings,
    default_model_dir,
    load_model,
    shower_seeds,
)
from caloforge.fastsim.record import ModelRecord
from caloforge.fastsim.sampling import Conditions, sample_to_file

__all__ = [
    "Conditions",
    "FastSimModel",
    "ModelRecord",
    "SamplerSettings",
    "default_model_dir",
    "load_model",
    "sample_to_file",
    "shower_seeds",
]
