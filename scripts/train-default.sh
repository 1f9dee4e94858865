#!/usr/bin/env bash
# Train the shipped default model (configs/calodit-cpu.yaml) on the datasets of
# scripts/make-datasets.sh. Resumes a killed run: run it again.
# Two stages, as the shipped weights were made: 5,000 steps (the config's cosine decay to
# lr_min), then resumed to 10,000 steps; the schedule recomputed over 10,000 steps restarts at
# lr 1.6e-4 and decays to lr_min again (a warm restart). ~0.75 s per step here: ~2.1 h in all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
out="${1:-runs/calodit-cpu}"
data=(--data data/siw-train-a.h5 data/siw-train-b.h5 data/scipb.h5)
resume=()
if [[ -f $out/config.yaml ]]; then resume=(--resume); fi
# stage 1; a run already in stage 2 keeps its recorded 10,000 steps and finishes here
.venv/bin/caloforge train --config configs/calodit-cpu.yaml --out "$out" "${resume[@]}" \
  "${data[@]}" --no-progress
.venv/bin/caloforge train --config configs/calodit-cpu.yaml --out "$out" --resume --steps 10000 \
  "${data[@]}" --no-progress
