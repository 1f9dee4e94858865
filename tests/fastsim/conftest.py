"""Shared fixtures of the fast-simulation tests: tiny trained models of each family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pipeline import CALODIT_TINY, DISTILL_TINY, TINY, _file

from caloforge.cli import main


def _run(*args: str | Path) -> int:
    return main([*map(str, args)])


@pytest.fixture(scope="session")
def teachers(tmp_path_factory: pytest.TempPathFactory, make_caloforge_file) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """A tiny trained model of each family, and their data."""
    root = tmp_path_factory.mktemp("teachers")
    data = _file(make_caloforge_file, root / "a.h5", lambda e: np.full_like(e, 0.03))
    factorized, calodit = root / "factorized", root / "calodit"
    common = ["--data", data, "--steps", "2"]
    assert _run("train", *common, "--out", factorized, *TINY, "--set", "energy.train.steps=2", "--set", "energy.conditional=true") == 0  # fmt: skip
    assert _run("train", *common, "--out", calodit, *CALODIT_TINY) == 0
    classic = root / "factorized-classic"  # without occupancy bits nor log layer conditions (older models)  # fmt: skip
    assert _run("train", *common, "--out", classic, *TINY, "--set", "energy.train.steps=2", "--set", "occupancy=false", "--set", "layer_logs=false") == 0  # fmt: skip
    energies = root / "factorized-log-energy"  # the shape code's values: log voxel energies
    assert _run("train", *common, "--out", energies, *TINY, "--set", "energy.train.steps=2", "--set", "voxel_values=log-energy") == 0  # fmt: skip
    by_layer = root / "factorized-by-layer"  # the shape code's logits about a line in log E_layer
    assert _run("train", *common, "--out", by_layer, *TINY, "--set", "energy.train.steps=2", "--set", "voxel_values=fraction-by-layer") == 0  # fmt: skip
    return {"data": data, "factorized": factorized, "calodit": calodit, "factorized-classic": classic, "factorized-log-energy": energies, "factorized-by-layer": by_layer}  # fmt: skip


@pytest.fixture(scope="session")
def students(
    teachers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny teachers, each with a consistency student ``cd`` (2 steps of distillation)."""
    root = tmp_path_factory.mktemp("students")
    out = {"data": teachers["data"]}
    for family in ("factorized", "calodit"):
        out[family] = root / family
        args = ["--model", teachers[family], "--data", teachers["data"], "--out", out[family]]
        assert _run("distill", *args, "--steps", "2", *DISTILL_TINY) == 0
    return out
