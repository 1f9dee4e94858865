#!/usr/bin/env bash
# Issue 16: the default model's consistency students (cd, then ect), each judged like the
# teacher on the same 10k vs 10k held-out showers (benchmarks/fidelity.py), and
# caloforge benchmark. The cd run keeps a checkpoint every 500 steps, and every kept student is
# judged at 1 and 2 steps (benchmarks/distill_kept.py, results in
# benchmarks/results/distill_kept_LABEL.md): the shipped student is the best of them.
# Runs after scripts/train-default.sh, on its run folder (default ~/caloforge-runs/default);
# every stage resumes or skips what is done: run it again after an interruption. The order
# puts the decisive results first: the cd student (about 40 min) and its kept students'
# judgements (minutes each, with their reports for the card), the benchmark, the 32-step
# teacher's judgement (about an hour of sampling), then the ect student and its judgement.
# A RUN folder that holds no model yet gets a copy of the shipped default (the teacher when the
# training run is gone): `caloforge distill --model default --out RUN`.
#   scripts/distill-default.sh [RUN]      # STEPS=2000 per student
# TRAIN names the Geant4 sets to distil on; LABEL (default: default) names the results
# (benchmarks/results/fidelity_LABEL-METHOD-STEPS.md), so a second recipe keeps the first's.
#   TRAIN="siw-train-a scipb" STEPS=4000 LABEL=shipped scripts/distill-default.sh $RUNS/shipped
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-$HOME/caloforge-runs}"
run="${1:-$runs/default}"
train=(${TRAIN:-siw-train-a scipb})  # the Geant4 sets distilled on (the shipped student's)
scripts/make-datasets.sh "${train[@]}" siw-test
data=(--data)
for name in "${train[@]}"; do data+=("data/$name.h5"); done
teacher="$run"
[[ -f $run/model.json ]] || teacher=default
distill() {  # distill METHOD: the student METHOD of the run, resumed if it was started
  local resume=()
  if [[ -f $run/distill-$1/config.yaml ]]; then resume=(--resume); fi
  .venv/bin/caloforge distill --model "$teacher" --out "$run" --method "$1" \
    --steps "${STEPS:-2000}" "${data[@]}" "${resume[@]}" --set train.keep_every=500 --no-progress
}
results=benchmarks/results
reference=(--reference data/siw-test.h5 data/siw-test-b.h5 -n 20000)
judge() {  # judge NAME ARGS...: benchmarks/results/fidelity_NAME.md unless it is there
  local name=$1; shift
  [[ -f $results/fidelity_$name.md ]] && return
  .venv/bin/python benchmarks/fidelity.py --model "$run" "${reference[@]}" "$@" --no-diagnostics \
    --samples "$run/samples-$name.npz" --report "$run/report-$name" \
    --results "$results/fidelity_$name.md"
}
judge_student() {  # judge_student METHOD: at 1 and 2 steps
  for steps in 1 2; do judge "${LABEL:-default}-$1-$steps" --sampler "$1" --sampler-steps "$steps"; done
}
distill cd
scripts/make-datasets.sh siw-test-b  # simulated after distillation: never beside training
.venv/bin/python benchmarks/distill_kept.py --run "$run" --name cd "${reference[@]}" --sampler-steps 1 2 \
  --results "$results/distill_kept_${LABEL:-default}.md"
[[ -f $results/benchmark/benchmark.md ]] || .venv/bin/caloforge benchmark --model "$run" --out "$results/benchmark"
judge default-teacher --sampler heun
distill ect
judge_student ect
