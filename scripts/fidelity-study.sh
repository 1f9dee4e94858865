#!/usr/bin/env bash
# Issue 14's equal-budget study, from nothing: the two Geant4 sets it needs (data/siw-test.h5,
# held out, seed 2; data/siw-train-a.h5, seed 1), then benchmarks/fidelity_study.py (MINUTES of
# compute per arm, default 30; each arm judged on N held-out showers, default 4000 = 2k vs 2k)
# with its results in benchmarks/results/fidelity_study.md. Every stage resumes: run this
# script again after an interruption. About 3.5 h on 2 cores (40 min of it Geant4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/make-datasets.sh siw-test siw-train-a
.venv/bin/python benchmarks/fidelity_study.py --minutes "${MINUTES:-30}" \
  --arms "${ARMS:-control,factorized-343,factorized-layers}" \
  --data data/siw-train-a.h5 --reference data/siw-test.h5 -n "${N:-4000}" \
  --runs runs/fidelity-study --results benchmarks/results/fidelity_study.md
