"""A calibrated copy of a raw caloforge file for the CaloChallenge evaluation.

The CaloChallenge datasets 2 and 3 store active-layer energies divided by the sampling fraction
(0.033 for Par04 W/Si) and clipped at 0; the official histograms (E_tot/E_inc in [0.5, 1.5])
assume it. :func:`export_calochallenge` applies the same calibration with the sampling fraction
measured for the file's detector, zeroes voxels below the evaluation threshold, and says so in
the output's attributes. The layout stays the caloforge one (a superset of the CaloChallenge
layout), so the CaloChallenge readers and evaluation code read it unchanged.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from caloforge.atomic import check_output, output_lock
from caloforge.data.contract import (
    FORMAT_NAME,
    THRESHOLD_DATASETS_2_3_MEV,
    file_sampling_fraction,
)
from caloforge.data.io import (
    ShowerWriter,
    check_layout,
    decode_attrs,
    iter_chunks,
    open_h5,
)
from caloforge.errors import DataError, OutputError, SpecError
from caloforge.resources import check_space

log = logging.getLogger(__name__)


def _check_chunk(
    src: Path,
    start: int,
    energies: np.ndarray,
    showers: np.ndarray,
    theta: np.ndarray | None,
    phi: np.ndarray | None,
) -> None:
    """Refuse a chunk with NaN/inf anywhere or a non-positive incident energy."""
    for name, values in (
        ("incident_energies", energies),
        ("showers", showers),
        ("incident_theta", theta),
        ("incident_phi", phi),
    ):
        if values is None:
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            row = start + int(np.argwhere(bad)[0][0])
            raise DataError(f"{src}: {name} of shower {row} is NaN or inf; refusing to export")
    nonpositive = np.flatnonzero(energies <= 0)
    if nonpositive.size:
        row = start + int(nonpositive[0])
        raise DataError(
            f"{src}: shower {row} has a non-positive incident energy "
            f"({energies[nonpositive[0]]:g} MeV); refusing to export"
        )


# The meshes of CaloChallenge datasets 2 and 3 (Par04 W/Si), by cell counts (z, phi, r).
CALOCHALLENGE_MESHES = {(45, 16, 9): ("2", 3.4, 4.65), (45, 50, 18): ("3", 3.4, 2.325)}


def _calochallenge_geometry(src: Path, attrs: dict[str, Any]) -> str:
    """Which CaloChallenge dataset layout the file's mesh has, and how its cells differ."""
    raw = attrs.get("mesh")
    mesh: dict[str, Any] = raw if isinstance(raw, dict) else {}
    counts = (mesh.get("n_z"), mesh.get("n_phi"), mesh.get("n_r"))
    if counts not in CALOCHALLENGE_MESHES:
        found = "x".join(str(c) for c in counts)
        raise DataError(
            f"{src} has a {found} mesh; the CaloChallenge evaluation reads 45x16x9 (dataset 2) "
            "or 45x50x18 (dataset 3) meshes: simulate with --cells 45x16x9 or 45x50x18"
        )
    dataset, dz, dr = CALOCHALLENGE_MESHES[counts]
    if math.isclose(mesh["dz_mm"], dz, rel_tol=1e-6) and math.isclose(
        mesh["dr_mm"], dr, rel_tol=1e-6
    ):
        return f"dataset {dataset}"
    note = (
        f"dataset {dataset} voxel layout with cells of {mesh['dz_mm']:.3g} x {mesh['dr_mm']:.3g} mm "
        f"(z x r) instead of {dz} x {dr} mm: the same extent in units of X0 and R_M, so the "
        "evaluation's distances are in par04-siw millimetres"
    )
    log.warning("%s: %s", src, note)
    return note


def export_calochallenge(
    src: str | Path,
    out: str | Path,
    *,
    threshold_mev: float = THRESHOLD_DATASETS_2_3_MEV,
    overwrite: bool = False,
    chunk_size: int = 1000,
) -> int:
    """Write a calibrated copy of a raw caloforge shower file, chunk by chunk.

    Voxel energies are divided by the file's ``sampling_fraction`` attribute; calibrated
    voxels below ``threshold_mev`` (so every negative one) are set to 0. Incident energies and
    angles are copied. The output carries the source's attributes plus ``calibrated=True``,
    ``calibration``, ``threshold_mev`` and ``exported_from``, and an updated ``content``. It is
    written atomically: on any error neither ``out`` nor ``out.tmp`` is left behind (an
    existing ``out`` replaced with ``overwrite`` stays untouched until the export succeeds).

    Args:
        src: a raw (uncalibrated) caloforge file.
        out: the output file.
        threshold_mev: voxel threshold after calibration in MeV (15.15 keV as datasets 2/3).
        overwrite: replace an existing ``out``.
        chunk_size: showers processed at a time.

    Returns:
        The number of showers written, N.

    Raises:
        DataError: if ``src`` is missing, unreadable, not a caloforge file, already
            calibrated, has no valid sampling fraction, holds no showers, or holds NaN/inf or
            a non-positive incident energy.
        OutputError: if ``out`` exists (without ``overwrite``), is ``src``, or cannot be
            written.
        SpecError: if ``threshold_mev`` is negative or not finite, or ``chunk_size`` < 1.
    """
    src, out = Path(src), Path(out)
    if not (math.isfinite(threshold_mev) and threshold_mev >= 0):
        raise SpecError(f"the threshold must be a finite energy >= 0, got {threshold_mev} MeV")
    if chunk_size < 1:
        raise SpecError(f"chunk_size must be >= 1, got {chunk_size}")
    with open_h5(src) as f:
        attrs = decode_attrs(f.attrs)
        if attrs.get("format") != FORMAT_NAME:
            raise DataError(
                f"{src} is not a caloforge shower file (no format={FORMAT_NAME!r} attribute); "
                "only raw caloforge files can be exported"
            )
        n = check_layout(f, src, require_angles=True)
        n_voxels = int(f["showers"].shape[1])
    if attrs.get("calibrated"):
        raise DataError(
            f"{src} is already calibrated ({attrs.get('calibration', 'calibrated=True')}); "
            "export needs the raw simulated file"
        )
    sampling_fraction = file_sampling_fraction(attrs)
    if sampling_fraction is None:
        raise DataError(
            f"{src} has no valid sampling fraction (attribute sampling_fraction="
            f"{attrs.get('sampling_fraction')!r}); measure the detector's sampling fraction"
        )
    if n == 0:
        raise DataError(f"{src} holds no showers")
    geometry = _calochallenge_geometry(src, attrs)
    if out.exists() and out.resolve() == src.resolve():
        raise OutputError(f"{out} is the input file; choose another output")
    check_output(out, overwrite=overwrite)
    check_space(out, n * n_voxels * 4.0 + 1e6, f"{out} ({n} showers)")

    source = attrs.get("sampling_fraction_source") or "source unknown"
    out_attrs = {
        key: value for key, value in attrs.items() if key not in ("format", "format_version")
    }
    out_attrs.update(
        calibrated=True,
        calibration=f"voxels divided by the detector sampling fraction {sampling_fraction} "
        f"({source})",
        threshold_mev=float(threshold_mev),
        calochallenge_geometry=geometry,
        exported_from=src.name,
        content="calibrated energy: active-material energy divided by the sampling fraction, "
        f"voxels below {threshold_mev:g} MeV set to 0",
    )
    done = 0
    try:
        with output_lock(out), ShowerWriter(out, n, n_voxels, out_attrs) as writer:
            for energies, showers, theta, phi in iter_chunks(src, chunk_size):
                _check_chunk(src, done, energies, showers, theta, phi)
                calibrated = showers.astype(np.float64) / sampling_fraction  # (k, V)
                calibrated[calibrated < threshold_mev] = 0.0  # negatives included
                # theta and phi exist: check_layout(require_angles=True) above
                writer.write(energies, calibrated.astype(np.float32), theta, phi)  # type: ignore[arg-type]
                done += len(energies)
    except OSError as exc:  # reading errors are DataErrors already: this is the output side
        raise OutputError(f"cannot write {out}: {exc}") from None
    log.debug("exported %d showers of %s to %s", done, src, out)
    return done
