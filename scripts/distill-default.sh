#!/usr/bin/env bash
# Issue 16: the default model's consistency students (cd and ect), each judged like the teacher
# on the same 10k vs 10k held-out showers (benchmarks/fidelity.py), then caloforge benchmark.
# Runs after scripts/train-default.sh, on its run folder (default ~/caloforge-runs/default);
# every stage resumes or skips what is done: run it again after an interruption.
#   scripts/distill-default.sh [RUN]      # STEPS=2000 per student
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-$HOME/caloforge-runs}"
run="${1:-$runs/default}"
scripts/make-datasets.sh siw-train-a siw-train-b scipb siw-test
data=(--data data/siw-train-a.h5 data/siw-train-b.h5 data/scipb.h5)
for method in cd ect; do
  resume=()
  if [[ -f $run/distill-$method/config.yaml ]]; then resume=(--resume); fi
  .venv/bin/caloforge distill --model "$run" --out "$run" --method "$method" \
    --steps "${STEPS:-2000}" "${data[@]}" "${resume[@]}" --no-progress
done
scripts/make-datasets.sh siw-test-b  # simulated after the students: never beside training
results=benchmarks/results
reference=(--reference data/siw-test.h5 data/siw-test-b.h5 -n 20000)
judge() {  # judge NAME ARGS...: benchmarks/results/fidelity_NAME.md unless it is there
  local name=$1; shift
  [[ -f $results/fidelity_$name.md ]] && return
  .venv/bin/python benchmarks/fidelity.py --model "$run" "${reference[@]}" "$@" \
    --samples "$run/samples-$name.npz" --report "$run/report-$name" \
    --results "$results/fidelity_$name.md"
}
# the students first (minutes each), the benchmark, then the 32-step teacher (about an hour)
for method in cd ect; do
  for steps in 1 2; do judge "default-$method-$steps" --sampler "$method" --sampler-steps "$steps" --no-diagnostics; done
done
[[ -f $results/benchmark/benchmark.md ]] || .venv/bin/caloforge benchmark --model "$run" --out "$results/benchmark"
judge default-teacher --sampler heun
