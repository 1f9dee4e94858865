"""Denoising error of several models on the same held-out showers, in a common unit.

    python benchmarks/heldout_denoising.py MODEL [MODEL ...] [--data data/siw-test.h5] [-n 1000]

A sampled-shower comparison (FPD, KPD, AUC) of models that are all far from Geant4 is noisy.
This compares their denoisers directly: each model preprocesses the showers with its own
fitted transform, so the noise and the error are measured in the common unit ``ln(u + eps)``
(``u = E_v / E_inc``): noise of ``s`` in that unit is ``sigma = s / std`` for a model whose
transform has standard deviation ``std``. Reports the rms error of the denoised ``ln(u + eps)``
at several noise levels ``s`` (the same noise for every model), on all voxels and on hit voxels.
Takes about a minute per model on this machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from denoising import model_inputs  # benchmarks/denoising.py: the same preprocessing

from caloforge.data.readers import read_showers
from caloforge.fastsim import load_model

LEVELS = (0.3, 1.0, 3.0, 10.0, 30.0)  # noise in units of ln(u + eps)
BATCH = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="data/siw-test.h5")
    parser.add_argument("-n", type=int, default=1000, help="showers (the first n of --data)")
    parser.add_argument("--out", type=Path, help="write the table here too")
    args = parser.parse_args()
    data = read_showers(args.data, stop=args.n)
    n = len(data.energies)
    if data.theta is None or data.phi is None:
        parser.error(f"{args.data} has no incident angles")
    hits = torch.from_numpy(data.showers > 0)  # the same voxels for every model
    noise = torch.randn((n, int(data.showers.shape[1])), generator=torch.Generator().manual_seed(0))
    header = " | ".join(f"s = {s:g}" for s in LEVELS)
    lines = [
        f"# Denoising error on {n} showers of {args.data}, in units of ln(u + eps)",
        "",
        (
            "rms error of the denoised ln(u + eps) (all voxels; hit voxels in brackets), the same "
            "noise for every model. Reproduce: `python benchmarks/heldout_denoising.py "
            f"{' '.join(args.models)} --data {args.data} -n {n}`."
        ),
        "",
        f"| model | {header} |",
        "|---|" + "---|" * len(LEVELS),
    ]
    for name in args.models:
        model = load_model(name)
        pre, net = model.preprocessing, model.net
        t = pre.shower
        y, cond = model_inputs(model, data)
        y = y.reshape(n, -1)
        ln_u = y.double() * t.std + t.mean
        cells = []
        with torch.no_grad():
            for s in LEVELS:
                sigma = s / t.std
                err = torch.empty_like(ln_u)
                for a in range(0, n, BATCH):
                    b = slice(a, a + BATCH)
                    noisy = (y[b] + sigma * noise[b]).reshape(-1, 1, *pre.mesh_shape)
                    d = net(noisy, torch.full((len(noisy),), sigma), cond[b]).reshape(
                        len(noisy), -1
                    )
                    err[b] = d.double() * t.std + t.mean - ln_u[b]
                cells.append(
                    f"{float(err.square().mean().sqrt()):.3f} "
                    f"({float(err[hits].square().mean().sqrt()):.3f})"
                )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
