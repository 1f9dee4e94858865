"""Geant4 throughput of ``caloforge simulate`` on a Dask cluster against local workers.

The same request (par04-siw photons, log-uniform 1-100 GeV, theta 0.87-2.27, the training sets'
spectrum) is simulated by the whole command, as a user runs it, with ``--workers 1``,
``--workers 2``, ``--dask local:1`` and ``--dask local:2``, in turn within each repeat; each
number is the fastest of ``--repeats``, so a slow phase of the shared machine favours no
configuration. Showers/hour include everything the command does (start-up of Geant4 and of
the Dask cluster, merging the file); the files are checked to be identical.

    python benchmarks/dask_simulate.py [-n 200] [--repeats 2]
        [--out benchmarks/results/dask_simulate.md]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "--workers 1": ["--workers", "1"],
    "--workers 2": ["--workers", "2"],
    "--dask local:1": ["--dask", "local:1"],
    "--dask local:2": ["--dask", "local:2"],
}


def _command(n: int, chunk: int, extra: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "caloforge.cli", "simulate", "--detector", "par04-siw",
            "--energy", "log:1:100", "--theta", "0.87:2.27", "--phi", "0:6.2832",
            "-n", str(n), "--chunk-size", str(chunk), "--seed", "11", "--no-progress",
            *extra, "--out", str(out)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="showers per run")
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/dask_simulate.md")
    args = parser.parse_args()

    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, extra in CONFIGS.items():
                out = Path(tmp) / f"{name.split()[-1].replace(':', '')}-{name[2]}-{r}.h5"
                start = time.perf_counter()
                subprocess.run(_command(args.n, args.chunk_size, extra, out), check=True)
                seconds[name].append(time.perf_counter() - start)
                print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)
        files = sorted(Path(tmp).glob("*.h5"))
        identical = all(filecmp.cmp(files[0], f, shallow=False) for f in files[1:])

    base = min(seconds["--workers 1"])
    rows = []
    for name, times in seconds.items():
        best = min(times)
        rows.append(
            {
                "config": name,
                "seconds": best,
                "all_seconds": times,
                "showers_per_hour": args.n / best * 3600,
                "speedup_vs_workers_1": base / best,
            }
        )
    lines = [
        "# Geant4 throughput: `simulate --dask` against local workers",
        "",
        (
            f"`python benchmarks/dask_simulate.py -n {args.n} --chunk-size {args.chunk_size} "
            f"--repeats {args.repeats}` on {platform.machine()}, {os.cpu_count()} cores "
            f"({time.strftime('%Y-%m-%d')}). par04-siw photons, log-uniform 1-100 GeV, "
            f"θ 0.87-2.27; the whole command, fastest of {args.repeats}, configurations in turn."
        ),
        "",
        "| configuration | s (fastest) | all runs, s | showers/hour | speed-up over `--workers 1` |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{t:.1f}" for t in row["all_seconds"])
        lines.append(
            f"| `{row['config']}` | {row['seconds']:.1f} | {runs} | "
            f"{row['showers_per_hour']:,.0f} | {row['speedup_vs_workers_1']:.2f} |"
        )
    lines += ["", f"All {len(files)} output files identical byte for byte: {identical}.", ""]
    out = Path(args.out)
    out.write_text("\n".join(lines))
    record = {"n": args.n, "chunk_size": args.chunk_size, "rows": rows, "identical": identical}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
