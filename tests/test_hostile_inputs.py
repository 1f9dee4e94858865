"""Hostile but fair inputs: files that reach outside themselves, and fuzzed HDF5 and YAML.

Whatever the bytes, a reader either returns data or raises the library's own error
(:class:`~caloforge.errors.CaloforgeError`): never another exception, never a crash.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caloforge.cli import main
from caloforge.config import RunConfig, load_config
from caloforge.data.inspect import inspect_file
from caloforge.data.readers import read_showers
from caloforge.errors import CaloforgeError, DataError
from caloforge.geometry.detectors import load_detector

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _outside(tmp_path: Path) -> dict[str, Path]:
    """Three files whose incident energies live in another file."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10, dtype="f8").tobytes())
    files = {name: tmp_path / f"{name}.h5" for name in ("storage", "link", "virtual")}
    with h5py.File(files["storage"], "w") as f:
        f.create_dataset("incident_energies", (10, 1), "f8", external=[(str(secret), 0, 80)])
        f["showers"] = np.ones((10, 368), "f4")
    with h5py.File(files["link"], "w") as f:
        f["incident_energies"] = h5py.ExternalLink(str(files["storage"]), "incident_energies")
        f["showers"] = np.ones((10, 368), "f4")
    layout = h5py.VirtualLayout(shape=(10, 1), dtype="f8")
    layout[:] = h5py.VirtualSource(str(files["storage"]), "incident_energies", shape=(10, 1))
    with h5py.File(files["virtual"], "w") as f:
        f.create_virtual_dataset("incident_energies", layout)
        f["showers"] = np.ones((10, 368), "f4")
    return files


@pytest.mark.parametrize(
    ("kind", "message"),
    [("storage", "external storage"), ("link", "links to another file"), ("virtual", "virtual")],
)
def test_files_that_reach_outside_themselves_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    path = _outside(tmp_path)[kind]
    with pytest.raises(DataError, match=message):
        read_showers(path)
    assert main(["inspect", str(path)]) == 1
    assert main(["export", str(path), "--out", str(tmp_path / "cc.h5")]) == 1
    err = capsys.readouterr().err
    assert err.count("caloforge: error:") == 2
    assert "self-contained" in err
    assert not (tmp_path / "cc.h5").exists()


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_not_a_shower_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.h5"
    path.write_bytes(data)
    with pytest.raises(CaloforgeError):
        read_showers(path)


@FUZZ
@given(
    n=st.integers(0, 4),
    voxels=st.sampled_from([0, 1, 368, 533, 6480]),
    energy_shape=st.sampled_from(["n1", "n", "n2", "scalar"]),
    values=st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e30]),
    dtype=st.sampled_from(["f4", "f8", "i4", "S3"]),
    drop=st.sampled_from([None, "incident_energies", "showers"]),
)
def test_malformed_hdf5_layouts_give_the_library_error(
    tmp_path: Path,
    n: int,
    voxels: int,
    energy_shape: str,
    values: float,
    dtype: str,
    drop: str | None,
) -> None:
    path = tmp_path / "fuzz.h5"
    shapes = {"n1": (n, 1), "n": (n,), "n2": (n, 2), "scalar": ()}
    with h5py.File(path, "w") as f:
        if drop != "incident_energies":
            f.create_dataset("incident_energies", data=np.full(shapes[energy_shape], 1e4))
        if drop != "showers":
            showers = np.full((n, voxels), values)
            with np.errstate(invalid="ignore"):  # NaN as integers: any value will do
                f.create_dataset("showers", data=showers.astype(dtype))
    for reader in (read_showers, inspect_file):
        with contextlib.suppress(CaloforgeError):  # the library's error: the CLI's one line
            reader(path)


@FUZZ
@given(text=st.text(max_size=300))
def test_any_yaml_text_gives_a_config_or_the_library_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(CaloforgeError):
        load_config(RunConfig, path)
    with contextlib.suppress(CaloforgeError):
        load_detector(str(path))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_as_yaml_give_the_library_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    for load in (lambda: load_config(RunConfig, path), lambda: load_detector(str(path))):
        with contextlib.suppress(CaloforgeError):
            load()


def test_yaml_tags_do_not_run_code(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(CaloforgeError):
        load_config(RunConfig, path)
    assert not Path("pwned").exists()
