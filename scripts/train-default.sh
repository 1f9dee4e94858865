#!/usr/bin/env bash
# Train the shipped default model (configs/calodit-cpu.yaml) on the datasets of
# scripts/make-datasets.sh. Resumes a killed run: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
out="${1:-runs/calodit-cpu}"
resume=()
if [[ -f $out/config.yaml ]]; then resume=(--resume); fi
.venv/bin/caloforge train --config configs/calodit-cpu.yaml --out "$out" "${resume[@]}" \
  --data data/siw-train-a.h5 data/siw-train-b.h5 data/scipb.h5 --no-progress
