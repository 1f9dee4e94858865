#!/usr/bin/env bash
# Issue 14's equal-budget study, from nothing: the two Geant4 sets it needs (data/siw-test.h5,
# held out, seed 2; data/siw-train-a.h5, seed 1), then benchmarks/fidelity_study.py (40 min of
# compute per arm) with its results in benchmarks/results/fidelity_study.md. Every stage
# resumes: run this script again after an interruption. About 3.5 h on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/make-datasets.sh siw-test siw-train-a
.venv/bin/python benchmarks/fidelity_study.py --minutes "${MINUTES:-40}" \
  --arms "${ARMS:-control,factorized-343,factorized-layers}" \
  --data data/siw-train-a.h5 --reference data/siw-test.h5 -n 10000 \
  --runs runs/fidelity-study --results benchmarks/results/fidelity_study.md
