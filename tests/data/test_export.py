"""Tests of caloforge.data.export: calibration, threshold, attributes, atomic refusal."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main
from caloforge.data.calochallenge import read_calochallenge
from caloforge.data.export import export_calochallenge
from caloforge.data.inspect import inspect_file
from caloforge.data.io import iter_chunks, read_attrs
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.geometry.mesh import MeshSpec

MESH = MeshSpec()  # CaloChallenge dataset 2's 45 x 16 x 9, the only kind export accepts
V = MESH.n_voxels
THRESHOLD = 0.5e-3 / 0.033  # MeV, the default: CaloChallenge datasets 2/3


def _read_all(path: Path) -> tuple[np.ndarray, ...]:
    chunks = list(iter_chunks(path))
    return tuple(np.concatenate([c[i] for c in chunks]) for i in range(4))  # type: ignore[misc]


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name))


def test_divides_by_the_sampling_fraction_and_applies_the_threshold(tmp_path, make_caloforge_file):
    sf = 0.0331
    rng = np.random.default_rng(1)
    raw = (rng.uniform(0.01, 50.0, size=(5, V))).astype(np.float32)  # far above the threshold
    raw[0, 0] = sf * THRESHOLD * (1 - 1e-4)  # just below after calibration -> 0
    raw[0, 1] = sf * THRESHOLD * (1 + 1e-4)  # just above -> kept
    raw[1, 2] = -0.3  # negative -> 0
    raw[2, 3] = 0.0
    src = make_caloforge_file(
        tmp_path / "raw.h5",
        mesh=MESH,
        sampling_fraction=sf,
        energies=np.linspace(1e3, 5e3, 5),
        showers=raw,
    )
    out = tmp_path / "cc.h5"
    assert export_calochallenge(src, out, chunk_size=2) == 5

    energies, showers, theta, phi = _read_all(out)
    src_energies, src_showers, src_theta, src_phi = _read_all(src)
    expected = (src_showers.astype(np.float64) / sf).astype(np.float32)
    kept = np.ones_like(raw, dtype=bool)
    kept[0, 0] = kept[1, 2] = kept[2, 3] = False
    np.testing.assert_array_equal(showers[kept], expected[kept])
    assert (showers[~kept] == 0).all()
    assert showers[0, 1] > THRESHOLD
    assert showers.dtype == np.float32
    np.testing.assert_array_equal(energies, src_energies)
    np.testing.assert_array_equal(theta, src_theta)
    np.testing.assert_array_equal(phi, src_phi)
    assert _leftovers(out) == ["cc.h5"]


def test_exported_attributes_say_calibrated(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=3, mesh=MESH, sampling_fraction=0.0312)
    out = tmp_path / "cc.h5"
    export_calochallenge(src, out, threshold_mev=0.02)
    src_attrs, attrs = read_attrs(src), read_attrs(out)
    assert src_attrs["calibrated"] is False
    assert attrs["calibrated"] is True
    assert attrs["calibration"] == (
        "voxels divided by the detector sampling fraction 0.0312 "
        "(caloforge calibrate --detector par04-siw (test))"
    )
    assert attrs["threshold_mev"] == 0.02
    assert attrs["exported_from"] == "raw.h5"
    assert attrs["format"] == "caloforge-showers"
    assert "calibrated energy" in attrs["content"]
    for key in ("detector_name", "mesh", "particle", "sampling_fraction", "n_showers", "seed"):
        assert attrs[key] == src_attrs[key]


def test_export_reads_as_calochallenge_dataset_2(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=6, sampling_fraction=0.033, seed=2)
    out = tmp_path / "dataset_2.h5"
    export_calochallenge(src, out)
    data = read_calochallenge(out, "2")
    energies, showers, _, _ = _read_all(out)
    assert len(data) == 6
    np.testing.assert_array_equal(data.showers, showers)
    np.testing.assert_array_equal(data.energies, energies)
    # raw sums were 0.033 E_inc: calibrated, E_vis / E_inc = 1 up to the few zeroed voxels
    response = data.showers.sum(axis=1, dtype=np.float64) / data.energies
    np.testing.assert_allclose(response, 1.0, atol=2e-3)
    report = inspect_file(out)
    assert report.valid
    assert report.calibrated is True
    assert report.threshold_mev == pytest.approx(THRESHOLD)
    assert report.sparsity == pytest.approx(report.zero_fraction, abs=1e-12)  # nothing in (0, thr]


def test_already_calibrated_file_is_refused_and_nothing_written(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=3, mesh=MESH)
    out = tmp_path / "cc.h5"
    export_calochallenge(src, out)
    again = tmp_path / "cc2.h5"
    with pytest.raises(DataError, match="already calibrated"):
        export_calochallenge(out, again)
    assert _leftovers(again) == []


@pytest.mark.parametrize("value", [None, math.nan, 0.0, -0.03, "0.03"])
def test_missing_or_invalid_sampling_fraction_is_refused(tmp_path, make_caloforge_file, value):
    attrs = {"sampling_fraction": value}
    src = make_caloforge_file(tmp_path / "raw.h5", n=2, mesh=MESH, attrs=attrs)
    out = tmp_path / "cc.h5"
    with pytest.raises(DataError, match="no valid sampling fraction"):
        export_calochallenge(src, out)
    assert _leftovers(out) == []


def test_calochallenge_layout_file_is_refused(tmp_path):
    src = tmp_path / "plain.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("incident_energies", data=np.ones((2, 1)))
        f.create_dataset("showers", data=np.ones((2, 6480)))
    with pytest.raises(DataError, match="not a caloforge shower file"):
        export_calochallenge(src, tmp_path / "cc.h5")


@pytest.mark.parametrize(
    ("field", "row", "value", "message"),
    [
        ("showers", 5, np.nan, "showers of shower 5 is NaN or inf"),
        ("showers", 0, np.inf, "showers of shower 0 is NaN or inf"),
        ("energies", 6, np.nan, "incident_energies of shower 6 is NaN or inf"),
        ("theta", 3, np.inf, "incident_theta of shower 3 is NaN or inf"),
        ("energies", 4, 0.0, "shower 4 has a non-positive incident energy"),
    ],
)
def test_bad_input_leaves_no_output(tmp_path, make_caloforge_file, field, row, value, message):
    energies = np.full(8, 1e4)
    showers = np.ones((8, V))
    theta = np.full(8, 1.5)
    {"showers": showers[:, 0], "energies": energies, "theta": theta}[field][row] = value
    src = make_caloforge_file(
        tmp_path / "raw.h5", mesh=MESH, energies=energies, showers=showers, theta=theta
    )
    out = tmp_path / "cc.h5"
    with pytest.raises(DataError, match=message):
        export_calochallenge(src, out, chunk_size=2)  # fails after earlier chunks were written
    assert _leftovers(out) == []


def test_existing_output_needs_overwrite_and_survives_a_failed_export(
    tmp_path, make_caloforge_file
):
    src = make_caloforge_file(tmp_path / "raw.h5", n=3, mesh=MESH)
    out = tmp_path / "cc.h5"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists") as info:
        export_calochallenge(src, out)
    assert info.value.override == "overwrite"  # the CLI names its flag for it
    assert out.read_bytes() == b"old"

    showers = np.ones((3, V))
    showers[2, 2] = np.nan
    bad = make_caloforge_file(
        tmp_path / "bad.h5", mesh=MESH, energies=np.full(3, 1e3), showers=showers
    )
    with pytest.raises(DataError):
        export_calochallenge(bad, out, overwrite=True, chunk_size=1)
    assert out.read_bytes() == b"old"
    assert _leftovers(out) == ["cc.h5"]

    assert export_calochallenge(src, out, overwrite=True) == 3
    assert read_attrs(out)["calibrated"] is True


def test_output_may_not_be_the_input(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=2, mesh=MESH)
    with pytest.raises(OutputError, match="is the input file"):
        export_calochallenge(src, src, overwrite=True)
    assert read_attrs(src)["calibrated"] is False


def test_negative_threshold_is_refused(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=2, mesh=MESH)
    with pytest.raises(SpecError, match="threshold"):
        export_calochallenge(src, tmp_path / "cc.h5", threshold_mev=-1.0)


def test_cli_export(tmp_path, make_caloforge_file, capsys):
    src = make_caloforge_file(tmp_path / "raw.h5", n=4, mesh=MESH)
    out = tmp_path / "cc.h5"
    assert main(["export", str(src), "--out", str(out), "--threshold-kev", "20"]) == 0
    assert capsys.readouterr().out == f"wrote 4 calibrated showers to {out}\n"
    assert read_attrs(out)["threshold_mev"] == pytest.approx(0.02)

    again = tmp_path / "cc2.h5"
    assert main(["export", str(out), "--out", str(again)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("caloforge: error: ")
    assert "already calibrated" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
    assert _leftovers(again) == []

    assert main(["export", str(src), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_meshes_the_evaluation_cannot_read_are_refused(tmp_path, make_caloforge_file):
    src = make_caloforge_file(tmp_path / "raw.h5", n=2, mesh=MeshSpec(n_z=3, n_phi=2, n_r=2))
    with pytest.raises(DataError, match=r"45x16x9 \(dataset 2\) or 45x50x18 \(dataset 3\)"):
        export_calochallenge(src, tmp_path / "cc.h5")
    assert _leftovers(tmp_path / "cc.h5") == []


def test_the_geometry_of_the_cells_is_recorded(tmp_path, make_caloforge_file):
    par04 = make_caloforge_file(tmp_path / "a.h5", n=2)
    scaled = make_caloforge_file(tmp_path / "b.h5", n=2, mesh=MeshSpec(dz_mm=7.19, dr_mm=8.70))
    export_calochallenge(par04, tmp_path / "a_cc.h5")
    export_calochallenge(scaled, tmp_path / "b_cc.h5")
    assert read_attrs(tmp_path / "a_cc.h5")["calochallenge_geometry"] == "dataset 2"
    note = read_attrs(tmp_path / "b_cc.h5")["calochallenge_geometry"]
    assert note.startswith("dataset 2 voxel layout with cells of 7.19 x 8.7 mm")
