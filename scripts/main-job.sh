#!/usr/bin/env bash
# The main job: simulate a small set of real Geant4 photon showers in par04-siw and inspect them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
mkdir -p runs
.venv/bin/caloforge detectors
.venv/bin/caloforge simulate --detector par04-siw --particle gamma --energy log:1:100 \
  --theta 0.87:2.27 --phi 0:6.2832 -n 200 --seed 1 --workers 2 --out runs/siw-demo.h5 --overwrite
.venv/bin/caloforge inspect runs/siw-demo.h5
.venv/bin/caloforge export --calochallenge runs/siw-demo.h5 --out runs/siw-demo-calochallenge.h5 --overwrite
.venv/bin/caloforge inspect runs/siw-demo-calochallenge.h5
