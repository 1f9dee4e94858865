"""Tests of caloforge.data.inspect on small files with known content."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main
from caloforge.data.contract import THRESHOLD_DATASET_1_MEV, THRESHOLD_DATASETS_2_3_MEV
from caloforge.data.inspect import format_report, inspect_file
from caloforge.errors import DataError
from caloforge.geometry.mesh import MeshSpec

SMALL_MESH = MeshSpec(n_z=3, n_phi=2, n_r=2)  # 12 voxels


def _write_plain(
    path: Path, energies: np.ndarray, showers: np.ndarray, **extra: np.ndarray
) -> Path:
    """A file in the CaloChallenge layout (no caloforge attributes)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("incident_energies", data=energies, compression="gzip")
        f.create_dataset("showers", data=showers, compression="gzip")
        for key, value in extra.items():
            f.create_dataset(key, data=value)
    return path


def _at(threshold: float) -> np.float32:
    """The largest float32 not above ``threshold``: a voxel "at" the threshold once stored."""
    value = np.float32(threshold)
    return value if value <= threshold else np.nextafter(value, np.float32(0))


def _known_showers(sampling_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Four showers of 12 voxels with E_vis/E_inc = 0.02, 0.03, 0.04, 0.05 (in units of sf/0.03)."""
    energies = np.array([1e3, 1e4, 1e5, 1e6])
    ratios = np.array([0.02, 0.03, 0.04, 0.05]) * sampling_fraction / 0.03
    showers = np.zeros((4, 12))
    threshold = THRESHOLD_DATASETS_2_3_MEV * sampling_fraction  # the raw-energy threshold
    for i, (energy, ratio) in enumerate(zip(energies, ratios, strict=True)):
        showers[i, : i + 1] = energy * ratio / (i + 1)  # i + 1 large voxels ...
    showers[0, 5] = threshold * 0.5  # ... plus tiny ones (below and at the threshold) in
    showers[1, 6] = _at(threshold)  # showers 0 and 1, negligible in the sums
    return energies, showers


def test_known_sums_give_known_response_and_sparsity(tmp_path, make_caloforge_file):
    sf = 0.03
    energies, showers = _known_showers(sf)
    path = make_caloforge_file(
        tmp_path / "a.h5", mesh=SMALL_MESH, sampling_fraction=sf, energies=energies, showers=showers
    )
    report = inspect_file(path, chunk_size=3)  # chunks of 3 + 1 showers
    ratios = showers.astype(np.float32).sum(axis=1, dtype=np.float64) / energies
    assert report.valid, report.problems
    assert report.kind == "caloforge"
    assert (report.n, report.n_voxels) == (4, 12)
    assert report.binning.grid_shape == (3, 2, 2)
    assert report.calibrated is False
    assert report.sampling_fraction == sf
    assert report.response_mean == pytest.approx(ratios.mean(), rel=1e-12)
    assert report.response_std == pytest.approx(ratios.std(), rel=1e-9)
    assert report.response_mean == pytest.approx(0.035, rel=1e-5)
    # zeros per shower: 12 - 2, 12 - 3, 12 - 3, 12 - 4
    assert report.zero_fraction == pytest.approx(np.mean([10, 9, 9, 8]) / 12)
    # at or below the raw threshold additionally: one voxel each in showers 0 and 1
    assert report.threshold_mev == pytest.approx(THRESHOLD_DATASETS_2_3_MEV * sf)
    assert report.sparsity == pytest.approx(np.mean([11, 10, 9, 8]) / 12)
    assert "sampling fraction 0.03" in report.threshold_note
    assert report.energy_range_gev == pytest.approx((1.0, 1000.0))
    assert report.detector_name == "par04-siw"
    assert report.particle == "gamma"


def test_statistics_do_not_depend_on_chunk_size(tmp_path, make_caloforge_file):
    path = make_caloforge_file(tmp_path / "a.h5", n=37, mesh=SMALL_MESH, seed=3)
    reference = inspect_file(path, chunk_size=1000)
    for chunk_size in (1, 5, 36):
        report = inspect_file(path, chunk_size=chunk_size)
        assert report.response_mean == pytest.approx(reference.response_mean, rel=1e-12)
        assert report.response_std == pytest.approx(reference.response_std, rel=1e-6)
        assert report.zero_fraction == pytest.approx(reference.zero_fraction, rel=1e-12)
        assert report.sparsity == pytest.approx(reference.sparsity, rel=1e-12)
        assert report.theta_range == reference.theta_range
        assert report.phi_range == reference.phi_range


def test_calibrated_caloforge_file_uses_its_export_threshold(tmp_path, make_caloforge_file):
    path = make_caloforge_file(
        tmp_path / "a.h5", mesh=SMALL_MESH, calibrated=True, attrs={"threshold_mev": 0.02}
    )
    report = inspect_file(path)
    assert report.calibrated is True
    assert report.threshold_mev == 0.02
    assert report.response_mean == pytest.approx(1.0, rel=1e-6)


def test_raw_file_without_sampling_fraction_has_no_sparsity(tmp_path, make_caloforge_file):
    path = make_caloforge_file(
        tmp_path / "a.h5", mesh=SMALL_MESH, attrs={"sampling_fraction": math.nan}
    )
    report = inspect_file(path)
    assert report.sampling_fraction is None
    assert report.sparsity is None
    assert report.threshold_mev is None
    assert "sparsity     not computed" in format_report(report)


@pytest.mark.parametrize(
    ("n_voxels", "dataset", "threshold"),
    [(6480, "2", THRESHOLD_DATASETS_2_3_MEV), (368, "1-photons", THRESHOLD_DATASET_1_MEV)],
)
def test_calochallenge_file_is_detected(tmp_path, n_voxels, dataset, threshold):
    energies = np.array([[2e3], [4e3]], dtype=np.float32)
    showers = np.zeros((2, n_voxels), dtype=np.float32)
    showers[:, 0] = energies[:, 0]  # E_vis / E_inc = 1
    showers[0, 1] = _at(threshold)  # at the threshold: counts as sparse
    path = _write_plain(tmp_path / "cc.h5", energies, showers)
    report = inspect_file(path)
    assert report.valid
    assert report.kind == f"calochallenge-{dataset}"
    assert report.calibrated is True
    assert report.threshold_mev == threshold
    assert report.response_mean == pytest.approx(np.mean([1 + showers[0, 1] / 2e3, 1.0]))
    assert report.zero_fraction == pytest.approx(1 - 1.5 / n_voxels)
    assert report.sparsity == pytest.approx(1 - 1 / n_voxels)
    assert report.theta_range is None
    assert report.detector_name is None


def test_unknown_voxel_count_needs_a_binning(tmp_path):
    path = _write_plain(tmp_path / "x.h5", np.ones((2, 1)) * 1e3, np.ones((2, 100)))
    with pytest.raises(DataError, match=r"100 voxels.*binning XML.*CaloChallenge dataset"):
        inspect_file(path)
    xml = tmp_path / "b.xml"
    xml.write_text(
        '<Bins><Bin pid="11" name="electron">'
        '<Layer id="0" r_edges="0,1,2,3,4,5" n_bin_alpha="10"/>'
        '<Layer id="1" r_edges="0" n_bin_alpha="1"/>'
        '<Layer id="2" r_edges="0,2,4,6,8,10" n_bin_alpha="10"/>'
        "</Bin></Bins>"
    )
    report = inspect_file(path, binning_xml=xml)
    assert report.kind == "custom binning"
    assert report.binning.n_voxels == 100
    assert report.response_mean == pytest.approx(0.1)
    with pytest.raises(DataError, match="CaloChallenge dataset 2 has 6480"):
        inspect_file(path, dataset="2")


def test_binning_xml_with_another_voxel_count_is_refused(tmp_path):
    path = _write_plain(tmp_path / "x.h5", np.ones((2, 1)) * 1e3, np.ones((2, 99)))
    xml = tmp_path / "b.xml"
    xml.write_text(
        '<Bins><Bin name="e"><Layer id="0" r_edges="0,1,2,3,4,5" n_bin_alpha="10"/></Bin></Bins>'
    )
    with pytest.raises(DataError, match="99 voxels per shower but binning"):
        inspect_file(path, binning_xml=xml)


def test_bad_content_is_reported_once_with_counts(tmp_path, make_caloforge_file):
    n = 9
    energies = np.full(n, 1e4)
    showers = np.full((n, 12), 10.0)
    showers[1, 3] = np.nan
    showers[7, 0] = np.inf
    showers[[2, 5, 8], 4] = -0.5
    showers[5, 5] = -2.0
    energies[4] = 0.0
    energies[6] = np.nan
    theta = np.full(n, 1.5)
    theta[3] = np.nan
    path = make_caloforge_file(
        tmp_path / "bad.h5", mesh=SMALL_MESH, energies=energies, showers=showers, theta=theta
    )
    report = inspect_file(path, chunk_size=2)
    assert not report.valid
    assert report.problems == [
        "1 shower has NaN or inf in incident_energies",
        "2 showers have NaN or inf in showers",
        "1 shower has NaN or inf in incident_theta",
        "3 showers have negative voxel energies (lowest -2 MeV)",
        "1 shower has a non-positive incident energy (lowest 0 MeV)",
    ]
    # statistics only over the 5 showers with finite data and E_inc > 0: 0, 2, 3, 5, 8
    assert report.response_mean == pytest.approx(np.mean([120, 109.5, 120, 97.5, 109.5]) / 1e4)
    assert report.theta_range == (1.5, 1.5)
    text = format_report(report)
    assert text.splitlines()[-6] == "INVALID (5 problems):"
    assert text.endswith("  - 1 shower has a non-positive incident energy (lowest 0 MeV)")


def test_n_showers_attribute_mismatch_is_a_problem(tmp_path, make_caloforge_file):
    path = make_caloforge_file(tmp_path / "a.h5", n=3, mesh=SMALL_MESH, attrs={"n_showers": 5})
    assert inspect_file(path).problems == ["the attribute n_showers is 5 but the file holds 3"]


def test_empty_file_is_invalid(tmp_path):
    path = _write_plain(tmp_path / "e.h5", np.zeros((0, 1)), np.zeros((0, 6480)))
    report = inspect_file(path)
    assert report.problems == ["the file holds no showers"]
    assert math.isnan(report.response_mean)
    assert format_report(report).endswith("  - the file holds no showers")


def test_format_report_of_a_valid_file(tmp_path, make_caloforge_file):
    path = make_caloforge_file(tmp_path / "a.h5", n=4)
    text = format_report(inspect_file(path))
    assert text.splitlines()[0] == f"{path}: caloforge, detector par04-siw, particle gamma"
    assert "4 x 6480 voxels (45 layers x 16 alpha x 9 r)" in text
    assert "E_vis/E_inc  0.03 +- " in text
    assert text.endswith("\nvalid")


# Layout errors: one DataError sentence each.


def _corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("text", "not a readable HDF5 file"),
        ("truncated", "not a readable HDF5 file"),
        ("corrupt chunk", r"cannot read showers .* \(corrupt file\?\)"),
        ("foreign", "no dataset 'incident_energies' .*not a shower file"),
        ("missing showers", "no dataset 'showers'"),
        ("missing theta", "no dataset 'incident_theta'"),
        ("row mismatch", r"showers has shape \(3, 6480\), expected \(4, V\)"),
        ("energies shape", r"incident_energies has shape \(4, 2\)"),
        ("angle shape", r"incident_phi has shape \(4, 3\)"),
        ("mesh mismatch", "showers have 6480 voxels but the file's mesh 3x2x2 has 12"),
        ("no mesh", "'mesh' attribute is missing or malformed"),
        ("strings", "showers holds .*, expected floating point numbers"),
    ],
)
def test_layout_errors_raise_one_data_error(tmp_path, make_caloforge_file, damage, message):
    path = tmp_path / "f.h5"
    if damage == "directory":
        path.mkdir()
    elif damage == "text":
        path.write_text("energy,shower\n1,2\n")
    elif damage in ("truncated", "corrupt chunk"):
        make_caloforge_file(path, n=60, seed=1)
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            _corrupt_middle(path)
    elif damage != "missing":
        make_caloforge_file(path, n=4)
        with h5py.File(path, "a") as f:
            if damage == "foreign":
                for key in list(f):
                    del f[key]
                f.create_dataset("images", data=np.zeros((2, 3)))
            elif damage == "missing showers":
                del f["showers"]
            elif damage == "missing theta":
                del f["incident_theta"]
            elif damage == "row mismatch":
                del f["showers"]
                f.create_dataset("showers", data=np.zeros((3, 6480)))
            elif damage == "energies shape":
                del f["incident_energies"]
                f.create_dataset("incident_energies", data=np.ones((4, 2)))
            elif damage == "angle shape":
                del f["incident_phi"]
                f.create_dataset("incident_phi", data=np.zeros((4, 3)))
            elif damage == "mesh mismatch":
                f.attrs["mesh"] = '{"n_z": 3, "n_phi": 2, "n_r": 2, "dz_mm": 1.0, "dr_mm": 1.0}'
            elif damage == "no mesh":
                del f.attrs["mesh"]
            elif damage == "strings":
                del f["showers"]
                f.create_dataset("showers", data=np.full((4, 6480), b"x"))
    with pytest.raises(DataError, match=message) as info:
        inspect_file(path)
    assert "\n" not in str(info.value)


# The CLI: exit code 0 / 1, clean messages.


def test_cli_inspect_valid_invalid_and_error(tmp_path, make_caloforge_file, capsys):
    good = make_caloforge_file(tmp_path / "good.h5", n=4)
    assert main(["inspect", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("valid")

    showers = np.ones((3, 12))
    showers[1, 2] = np.nan
    bad = make_caloforge_file(
        tmp_path / "bad.h5", mesh=SMALL_MESH, energies=np.full(3, 1e3), showers=showers
    )
    assert main(["inspect", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "  - 1 shower has NaN or inf in showers" in captured.out
    assert captured.err == ""

    text = tmp_path / "notes.txt"
    text.write_text("not hdf5")
    assert main(["inspect", str(text)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("caloforge: error: ")
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_cli_inspect_with_dataset_option(tmp_path, capsys):
    path = _write_plain(tmp_path / "x.h5", np.ones((2, 1)) * 1e3, np.ones((2, 368)))
    assert main(["inspect", str(path), "--dataset", "1-photons"]) == 0
    assert "calochallenge-1-photons" in capsys.readouterr().out
    assert main(["inspect", str(path), "--dataset", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("caloforge: error: ")
    assert "looks like dataset 1-photons" in err
