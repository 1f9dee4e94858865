#!/usr/bin/env bash
# The Geant4 showers shipped in the package for `caloforge demo`: par04-siw photons at 10, 50
# and 100 GeV, theta = pi/2, phi = 0 (500 per point on average). About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
.venv/bin/caloforge simulate --detector par04-siw --particle gamma --energy 10,50,100 \
  --theta 1.5707963 --phi 0 -n 1500 --seed 11 --workers "${WORKERS:-2}" --no-progress \
  --out src/caloforge/data/reference/demo-par04-siw-gamma.h5 "$@"
