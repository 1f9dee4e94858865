"""``caloforge evaluate`` end to end on small files: the report, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from caloforge.cli import main
from caloforge.errors import DataError
from caloforge.geometry.mesh import MeshSpec

SMALL = MeshSpec(n_z=6, n_phi=4, n_r=3)  # 72 voxels: a fast report
WITH_PLOTS = ["--classifier-epochs", "2", "--classifier-repeats", "1", "--no-progress"]
FAST = [*WITH_PLOTS, "--no-plots"]  # plots take most of a small report's time


def _showers(n: int, mesh: MeshSpec, energies: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Shower-like deposits: energy falling with z and r, Poisson-like fluctuations."""
    rng = np.random.default_rng(seed)
    z = np.arange(mesh.n_z)[:, None, None]
    r = np.arange(mesh.n_r)[None, None, :]
    shape = np.exp(-0.5 * ((z - 2.0) / 1.5) ** 2 - r) * np.ones((1, mesh.n_phi, 1))
    shape = (shape / shape.sum()).reshape(-1)
    showers = rng.gamma(5.0, shape / 5.0, size=(n, mesh.n_voxels))
    return showers * (scale * energies)[:, None]


def _file(make, path: Path, n: int = 240, *, seed: int = 0, mesh: MeshSpec = SMALL, **kwargs):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed + 1000)
    energies = kwargs.pop("energies", 10.0 ** rng.uniform(3.0, 5.0, n))
    calibrated = kwargs.get("calibrated", False)
    showers = kwargs.pop(
        "showers", _showers(len(energies), mesh, energies, 1.0 if calibrated else 0.03, seed)
    )
    return make(path, mesh=mesh, energies=energies, showers=showers, seed=seed, **kwargs)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_on_two_geant4_like_files(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    gen = _file(make_caloforge_file, tmp_path / "gen.h5", seed=2)
    out = tmp_path / "report"
    code, stdout, stderr = _run(
        capsys, "--reference", ref, "--generated", gen, "--out", out, *WITH_PLOTS
    )
    assert code == 0, stderr
    assert "classifier AUC, high level" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("auc_low", "auc_high", "fpd", "kpd"):
        assert set(metrics[key]) == {"value", "error"}
        assert set(metrics["baseline"][key]) == {"value", "error"}
    assert 0.0 <= metrics["auc_high"]["value"] <= 1.0
    assert "e_ratio" in metrics["separation_power"]
    assert "e_ratio" in metrics["baseline"]["separation_power"]
    assert metrics["threshold_mev"] == pytest.approx(0.5e-3)  # raw energies
    assert metrics["conditions"]["mode"] == "continuous"
    labels = [b["label"] for b in metrics["conditions"]["bins"]]
    assert "E 1-10 GeV" in labels
    assert "E 10-100 GeV" in labels
    page = (out / "index.html").read_text()
    for names in metrics["plots"].values():
        for name in names:
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f'src="{name}"' in page
    assert not list(tmp_path.glob(".report.*"))  # no temporary directory left


def test_identical_files_give_zero_separation(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    code, _, stderr = _run(
        capsys, "--reference", ref, "--generated", ref, "--out", tmp_path / "r", *FAST
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert max(metrics["separation_power"].values()) == 0.0
    assert metrics["plots"] == {}
    # FPD and KPD bootstrap each sample separately: compatible with 0, not exactly 0
    assert metrics["fpd"]["value"] < 0.05
    assert abs(metrics["kpd"]["value"]) < 3 * metrics["kpd"]["error"] + 1e-6


def test_calochallenge_layout_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.h5"
        energies = 2.0 ** rng.integers(8, 16, size=(200, 1)).astype(np.float64)
        showers = rng.exponential(50.0, size=(200, 368)) * (rng.random((200, 368)) < 0.3)
        with h5py.File(path, "w") as f:
            f.create_dataset("incident_energies", data=energies)
            f.create_dataset("showers", data=showers)
        paths.append(path)
    out = tmp_path / "report"
    code, _, stderr = _run(
        capsys, "--reference", paths[0], "--generated", paths[1], "--out", out, *FAST
    )
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threshold_mev"] == 1.0  # dataset 1
    assert metrics["conditions"]["mode"] == "points"  # the discrete dataset-1 energies


def _assert_clean_error(result: tuple[int, str, str], out: Path, *words: str) -> None:
    code, _, stderr = result
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("caloforge: error:"), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))


def test_bad_inputs(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    out = tmp_path / "report"

    other_mesh = _file(
        make_caloforge_file, tmp_path / "mesh.h5", seed=2, mesh=MeshSpec(n_z=5, n_phi=4, n_r=3)
    )
    _assert_clean_error(
        _run(capsys, "--reference", ref, "--generated", other_mesh, "--out", out), out, "voxels"
    )

    calibrated = _file(make_caloforge_file, tmp_path / "cal.h5", seed=2, calibrated=True)
    _assert_clean_error(
        _run(capsys, "--reference", ref, "--generated", calibrated, "--out", out),
        out,
        "calibrated",
    )

    nan_file = tmp_path / "nan.h5"
    showers = _showers(240, SMALL, np.full(240, 5e3), 0.03, 3)
    showers[7, 3] = np.nan
    _file(make_caloforge_file, nan_file, seed=3, showers=showers, energies=np.full(240, 5e3))
    _assert_clean_error(
        _run(capsys, "--reference", ref, "--generated", nan_file, "--out", out), out, "NaN"
    )

    # CaloChallenge-layout files are assumed calibrated: a raw one (x 0.03) is caught on the data
    plain = []
    for name, scale in (("cc-calibrated.h5", 1.0), ("cc-raw.h5", 0.03)):
        rng = np.random.default_rng(7)
        energies = 2.0 ** rng.integers(10, 16, size=(200, 1)).astype(np.float64)
        weights = rng.exponential(size=(200, 368)) * (rng.random((200, 368)) < 0.3)
        showers = weights / weights.sum(axis=1, keepdims=True) * energies * scale
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("incident_energies", data=energies)
            f.create_dataset("showers", data=showers)
        plain.append(tmp_path / name)
    _assert_clean_error(
        _run(capsys, "--reference", plain[0], "--generated", plain[1], "--out", out),
        out,
        "energy scales",
    )

    high = _file(make_caloforge_file, tmp_path / "high.h5", seed=4, energies=np.full(240, 5e5))
    _assert_clean_error(
        _run(capsys, "--reference", ref, "--generated", high, "--out", out), out, "conditions"
    )

    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("incident_energies", shape=(0, 1), dtype="f4")
        f.create_dataset("showers", shape=(0, 368), dtype="f4")
    _assert_clean_error(_run(capsys, "--reference", empty, "--generated", ref, "--out", out), out)

    _assert_clean_error(
        _run(capsys, "--reference", tmp_path / "missing.h5", "--generated", ref, "--out", out), out
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, _, err = _run(
        capsys, "--reference", ref, "--generated", ref, "--out", a_file, "--overwrite"
    )
    assert code == 1
    assert "is a file" in err
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    _assert_clean_error(_run(capsys, "--reference", ref, "--generated", corrupt, "--out", out), out)


def test_existing_output_needs_overwrite(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    code, _, stderr = _run(capsys, "--reference", ref, "--generated", ref, "--out", out, *FAST)
    assert code == 1
    assert "--overwrite" in stderr
    assert (out / "keep.txt").exists()
    code, _, stderr = _run(
        capsys, "--reference", ref, "--generated", ref, "--out", out, "--overwrite", *FAST
    )
    assert code == 0, stderr
    assert not (out / "keep.txt").exists()
    assert (out / "metrics.json").exists()


def test_different_detectors_are_noted(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    # another detector with another sampling fraction (0.17 instead of 0.03), raw energies
    energies = 10 ** np.random.default_rng(9).uniform(3.0, 5.0, 240)
    gen = _file(
        make_caloforge_file,
        tmp_path / "gen.h5",
        seed=2,
        sampling_fraction=0.17,
        energies=energies,
        showers=_showers(240, SMALL, energies, 0.17, 2),
        attrs={"detector_name": "par04-scipb", "detector": {"name": "par04-scipb"}},
    )
    code, stdout, stderr = _run(
        capsys,
        "--reference",
        ref,
        "--generated",
        gen,
        "--out",
        tmp_path / "r",
        *FAST,
        "--no-low-level",
    )
    assert code == 0, stderr
    assert "different detectors" in stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "auc_low" not in metrics
    assert any("par04-scipb" in note for note in metrics["notes"])


def test_small_generated_file_is_evaluated_with_notes(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _file(make_caloforge_file, tmp_path / "ref.h5", seed=1)
    gen = _file(make_caloforge_file, tmp_path / "gen.h5", n=15, seed=2)
    code, _, stderr = _run(
        capsys, "--reference", ref, "--generated", gen, "--out", tmp_path / "r", *FAST
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "fpd" not in metrics
    assert "auc_high" in metrics  # 15 showers are enough for the classifier, not for FPD
    # the reference still splits (190 vs 50), but 50 showers are too few for the FPD of the
    # small mesh's features either: refused and said, never printed as a result
    assert "fpd" not in metrics["baseline"]
    assert any(note.startswith("baseline: FPD not computed") for note in metrics["notes"])
    assert any("FPD" in note for note in metrics["notes"])


def test_distances_from_too_few_showers_are_refused_not_printed(
    make_caloforge_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 50-shower files: FPD's batches (25 to 50 showers) are no larger than the features,
    so it is refused with the number of showers it needs."""
    ref = _file(make_caloforge_file, tmp_path / "a.h5", n=50, seed=1)
    gen = _file(make_caloforge_file, tmp_path / "b.h5", n=50, seed=2)
    code, stdout, stderr = _run(
        capsys, "--reference", ref, "--generated", gen, "--out", tmp_path / "r", *FAST
    )
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "fpd" not in metrics
    assert any("showers per file" in note for note in metrics["notes"])
    assert "note: whole file: FPD not computed" in stdout


def test_a_failed_fpd_fit_is_a_failure_not_a_number() -> None:
    from caloforge.evaluate.metrics import FitError, fpd

    real = np.zeros((200, 3))
    gen = np.full((200, 3), np.nan)
    with pytest.raises(DataError):  # NaN features are refused first
        fpd(real, gen, min_samples=50, max_samples=100)
    rng = np.random.default_rng(0)
    huge = rng.normal(0, 1e200, (200, 3))  # distances overflow to inf
    with pytest.raises(FitError):
        fpd(huge, -huge, min_samples=50, max_samples=100, normalise=False)
