"""The default model against held-out Geant4 par04-siw photons (issue 4's acceptance).

Samples ``-n`` showers from a model at the conditions of the first ``-n`` showers of the
held-out Geant4 file (``caloforge sample`` with the same specification and seed as the
``caloforge simulate`` run that made it, so the same energies and angles), then runs
``caloforge evaluate`` with its default settings, which also computes the Geant4-vs-Geant4
baseline on two disjoint parts of the reference.

    python benchmarks/default_model.py [--model runs/calodit-cpu] [-n 5000] [--out DIR]
        [--results FILE]

Needs ``data/siw-test.h5`` from ``scripts/make-datasets.sh`` (par04-siw, seed 2, 10k photons,
log-uniform 1-100 GeV, theta 0.87-2.27, phi 0-2 pi). Writes ``runs/default-eval/`` (the sample
and the report, which ``scripts/ship_default_model.py --evaluation`` reads) and
``benchmarks/results/default_model.md`` (``--out`` and ``--results`` keep another model's
evaluation apart).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from evaluation import _table  # benchmarks/evaluation.py: the same tables

from caloforge.data.readers import read_showers
from caloforge.data.showers import ShowerData
from caloforge.geometry.mesh import REFERENCE_N_PHI, REFERENCE_N_R, REFERENCE_N_Z

ROOT = Path(__file__).resolve().parents[1]
SPEC = ["--energy", "log:1:100", "--theta", "0.87:2.27", "--phi", "0:6.2832", "--seed", "2"]


def _caloforge(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "caloforge", *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def _response(ref: ShowerData, gen: ShowerData, n: int) -> list[str]:
    """Median E_tot / E_inc and mean number of hit voxels by energy range, model vs Geant4."""
    lines = [
        "### Response and hits by energy (raw active-material energy, not calibrated)",
        "",
        "| E (GeV) | showers | E_tot / E_inc median, model | Geant4 | hits, model | Geant4 |",
        "|---|---|---|---|---|---|",
    ]
    energies = ref.energies[:n]
    stats = []
    for data in (gen, ref):
        showers = np.asarray(data.showers[:n], dtype=np.float64)
        stats.append((showers.sum(axis=1) / energies, (showers > 0).sum(axis=1)))
    for lo, hi in ((1, 3), (3, 10), (10, 30), (30, 100)):
        m = (energies >= lo * 1e3) & (energies < hi * 1e3)
        (r_gen, h_gen), (r_ref, h_ref) = ((r[m], h[m]) for r, h in stats)
        lines.append(
            f"| {lo}-{hi} | {int(m.sum())} | {np.median(r_gen):.4f} | {np.median(r_ref):.4f} | "
            f"{h_gen.mean():.0f} | {h_ref.mean():.0f} |"
        )
    return lines


def _radial(ref: ShowerData, gen: ShowerData, n: int, shape: tuple[int, int, int]) -> list[str]:
    """Mean fraction of the incident energy in each radial bin, model vs Geant4, above 30 GeV."""
    energies = ref.energies[:n]
    high = energies >= 30e3
    profiles = []
    for data in (gen, ref):
        showers = np.asarray(data.showers[:n][high], dtype=np.float64).reshape(-1, *shape)
        profiles.append((showers.sum(axis=(1, 2)) / energies[high, None]).mean(axis=0))
    lines = [
        f"### Radial profile, {int(high.sum())} showers of 30-100 GeV",
        "",
        "Mean E_r / E_inc per radial bin (sum over z and phi).",
        "",
        "| r bin | " + " | ".join(str(i) for i in range(shape[2])) + " |",
        "|---|" + "---|" * shape[2],
    ]
    for name, profile in zip(
        ("model", "Geant4", "model / Geant4"), (*profiles, np.divide(*profiles)), strict=True
    ):
        lines.append(f"| {name} | " + " | ".join(f"{v:.3g}" for v in profile) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/calodit-cpu")
    parser.add_argument("--reference", default="data/siw-test.h5")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--out", default="runs/default-eval")
    parser.add_argument("--results", default="benchmarks/results/default_model.md")
    args = parser.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    generated = out / "generated.h5"
    sample_s = _caloforge(
        "sample", "--model", args.model, "--detector", "par04-siw", *SPEC, "-n", str(args.n),
        "--out", str(generated), "--overwrite", "--no-progress",
    )  # fmt: skip
    ref, gen = read_showers(ROOT / args.reference), read_showers(generated)
    if not np.allclose(ref.energies[: args.n], gen.energies, rtol=1e-6):
        sys.exit("the sample's conditions differ from the reference's: check the specification")
    evaluate_s = _caloforge(
        "evaluate", "--reference", args.reference, "--generated", str(generated),
        "--out", str(out / "report"), "--limit", str(args.n), "--overwrite", "--no-progress",
    )  # fmt: skip
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    text = "\n".join(
        [
            "# The default model against held-out Geant4",
            "",
            (
                f"Model `{args.model}` (calodit-cpu, `scripts/train-default.sh`), sampled with its "
                f"default sampler (32-step stochastic Heun) at the conditions of the first {args.n} "
                f"showers of `{args.reference}`: {sample_s:.0f} s "
                f"({1e3 * sample_s / args.n:.0f} ms/shower including start-up, batch 256). "
                "Reproduce: `scripts/make-datasets.sh && scripts/train-default.sh && "
                "python benchmarks/default_model.py`."
            ),
            "",
            *_table("model vs Geant4", metrics, evaluate_s),
            "",
            *_response(ref, gen, args.n),
            "",
            *_radial(ref, gen, args.n, (REFERENCE_N_Z, REFERENCE_N_PHI, REFERENCE_N_R)),
        ]
    )
    results = ROOT / args.results
    results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
