"""Geant4 showers on a batch farm: dask-jobqueue starts the workers, caloforge runs the chunks.

Every batch job is one Dask worker with one single-threaded Geant4 (100-200 MB); the jobs
need the same caloforge install as this machine (same version: the workers are checked)
and nothing else, no shared file system: the chunks come back to this process, which writes
them into ``OUT.partial/`` and assembles the file. Kill this script and run it again: it
resumes from the finished chunks.

    pip install 'caloforge[dask]'
    python examples/simulate_on_a_batch_farm.py --system slurm --jobs 50 --queue short -- \\
        --detector par04-siw --energy log:1:1000 --theta 0.87:2.27 --phi 0:6.2832 \\
        -n 100000 --seed 1 --out siw-100k.h5
    python examples/simulate_on_a_batch_farm.py --system htcondor --jobs 50 --dry-run -- ...

``--dry-run`` prints the job script that would be submitted, and stops.
"""

from __future__ import annotations

import argparse
import sys

SYSTEMS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=SYSTEMS, default="slurm")
    parser.add_argument("--jobs", type=int, default=10, help="batch jobs = Dask workers")
    parser.add_argument("--queue", help="queue / partition (Slurm, PBS)")
    parser.add_argument("--walltime", default="04:00:00", help="per job; a lost job's chunks are retried")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the job script and stop")
    parser.add_argument("simulate", nargs=argparse.REMAINDER, help="-- then the simulate options")
    args = parser.parse_args()

    import dask
    import dask_jobqueue

    from caloforge.cli import main as caloforge

    options = {
        "cores": 1,
        "processes": 1,
        "memory": "2GB",
        "walltime": args.walltime,
        # Dask's profiler takes the GIL every 10 ms, which Geant4 needs for its callbacks
        "job_script_prologue": ["export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"],
    }
    if args.system == "htcondor":
        options["disk"] = "1GB"  # HTCondor asks for scratch space; the workers keep no chunks
        options.pop("walltime")
    elif args.queue:
        options["queue"] = args.queue
    # the scheduler runs here: a worker holds only the chunk it runs, so a chunk that kills its
    # worker (a Geant4 crash) is the only one blamed for it
    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        getattr(dask_jobqueue, SYSTEMS[args.system])(**options) as cluster,
    ):
        if args.dry_run:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        simulate = [a for a in args.simulate if a != "--"]
        return caloforge(["simulate", *simulate, "--dask", cluster.scheduler_address])


if __name__ == "__main__":
    sys.exit(main())
