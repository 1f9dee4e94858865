#!/usr/bin/env bash
# The Geant4 datasets used by the evaluation acceptance (issue 3) and the CaloDiT training (issue 4).
# Outputs go to data/ (git-ignored). Each command resumes where a killed run stopped: run this
# script again after an interruption. About 80 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
mkdir -p data
common=(--particle gamma --energy log:1:100 --theta 0.87:2.27 --phi 0:6.2832 --workers "${WORKERS:-2}" --no-progress)
run() {  # run OUT ARGS...: simulate unless OUT is already complete
  local out=$1; shift
  if [[ -f $out ]]; then echo "$out exists"; return; fi
  echo "simulating $out"
  .venv/bin/caloforge simulate "${common[@]}" "$@" --out "$out"
}
run data/siw-test.h5 --detector par04-siw -n 10000 --seed 2     # held-out par04-siw test set
run data/siw-train-a.h5 --detector par04-siw -n 10000 --seed 1  # par04-siw training set, part 1
run data/scipb.h5 --detector par04-scipb -n 10000 --seed 3      # second training detector
run data/siw-train-b.h5 --detector par04-siw -n 10000 --seed 4  # par04-siw training set, part 2
