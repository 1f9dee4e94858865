#!/usr/bin/env bash
# The Geant4 datasets used by the evaluation acceptance (issue 3), the training of the default
# model (issues 4 and 14), the fidelity study and final evaluation (issue 14) and the adaptation
# study (issue 17). Outputs go to data/ (git-ignored). Each command resumes where a killed run
# stopped: run this script again after an interruption. About 25 minutes per 10k par04-siw
# showers on 2 idle cores, 2 hours for the first five; name some to make only those (e.g.
# `scripts/make-datasets.sh siw-test siw-train-a`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
mkdir -p data
common=(--particle gamma --energy log:1:100 --theta 0.87:2.27 --phi 0:6.2832 --workers "${WORKERS:-2}" --no-progress)
wanted=("$@")
run() {  # run NAME ARGS...: simulate data/NAME.h5 unless it is complete or not wanted
  local name=$1 out=data/$1.h5; shift
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " =~ " $name " ]]; then return; fi
  if [[ -f $out ]]; then echo "$out exists"; return; fi
  echo "simulating $out"
  .venv/bin/caloforge simulate "${common[@]}" "$@" --out "$out"
}
run siw-test --detector par04-siw -n 10000 --seed 2     # held-out par04-siw test set
run siw-train-a --detector par04-siw -n 10000 --seed 1  # par04-siw training set, part 1
run scipb --detector par04-scipb -n 10000 --seed 3      # second training detector
run siw-train-b --detector par04-siw -n 10000 --seed 4  # par04-siw training set, part 2
run siw-test-b --detector par04-siw -n 10000 --seed 5   # held out, part 2 (10k vs 10k)
# issue 17, detectors the default never saw: adaptation sets and held-out sets
run pbwo4-train --detector pbwo4 -n 10000 --seed 11       # adaptation/scratch (first 100/1k/10k)
run pbwo4-test --detector pbwo4 -n 10000 --seed 12        # held out (5k vs 5k)
run allegro-train --detector allegro-like -n 1000 --seed 13  # a second adaptation
run allegro-test --detector allegro-like -n 4000 --seed 14   # held out (2k vs 2k)
