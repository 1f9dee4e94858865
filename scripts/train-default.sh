#!/usr/bin/env bash
# Train the shipped default model (issue 14: the factorised pipeline, configs/factorized-cpu.yaml,
# the equal-budget study's winner) on par04-siw and par04-scipb photons, from nothing: the
# Geant4 sets of scripts/make-datasets.sh first, then the energy model (20k steps, ~6 min alone) and
# the shape model (STEPS, default 15k: ~0.9 s per step here, ~3.7 h; a checkpoint kept every
# 2500 steps). The run lives outside the
# work tree (RUNS, default ~/caloforge-runs); a killed run resumes: run this script again.
# A session too short for the whole run trains a stage of it and ships that (the model card says
# which); the next stage starts from the shipped weights (INIT=default: `train --init`, a warm
# restart of the learning-rate schedule) in a new run folder.
#   scripts/train-default.sh                      # -> $RUNS/default
#   INIT=default STEPS=4000 scripts/train-default.sh $RUNS/default-stage2
#   CONFIG=configs/calodit-cpu.yaml STEPS=10000 scripts/train-default.sh $RUNS/calodit
# PART=energy|shape trains one network only (the other is the INIT model's); LR sets the
# shape model's peak learning rate; SETS adds settings (space-separated KEY=VALUE), e.g.
#   SETS="voxel_values=fraction-by-layer" STEPS=9000 scripts/train-default.sh $RUNS/byl
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-$HOME/caloforge-runs}"
out="${1:-$runs/default}"
config="${CONFIG:-configs/factorized-cpu.yaml}"
scripts/make-datasets.sh siw-train-a siw-train-b scipb
data=(--data data/siw-train-a.h5 data/siw-train-b.h5 data/scipb.h5)
resume=()
if [[ -f $out/config.yaml ]]; then resume=(--resume); fi
if [[ -n ${INIT:-} ]]; then resume+=(--init "$INIT"); fi
if [[ -n ${PART:-} ]]; then resume+=(--part "$PART"); fi
if [[ -n ${LR:-} ]]; then resume+=(--set train.lr="$LR"); fi
for setting in ${SETS:-}; do resume+=(--set "$setting"); done
energy=()
if grep -q "^family: factorized" "$config"; then energy=(--set energy.train.steps="${ENERGY_STEPS:-20000}"); fi
.venv/bin/caloforge train --config "$config" --out "$out" "${resume[@]}" "${energy[@]}" \
  --set train.keep_every=2500 --steps "${STEPS:-15000}" "${data[@]}" --no-progress
