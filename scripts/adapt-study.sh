#!/usr/bin/env bash
# Issue 17: the adaptation study. The shipped default (trained on par04-siw and par04-scipb)
# fine-tuned to pbwo4, a homogeneous crystal calorimeter it never saw, against the same
# pipeline trained from scratch on the same showers (the first 100, 1000 and 10000 of
# data/pbwo4-train.h5), every point judged on the same held-out pbwo4 showers
# (benchmarks/adapt_study.py; results in benchmarks/results/adapt_study.{md,json,png}).
# The decisive arms come first: 1000 showers adapted, then 10000 from scratch, then the rest;
# last, the 1000-shower adapted model adapted again to allegro-like (1000 showers) and judged
# again on pbwo4 (and on held-out allegro-like showers).
# Every stage resumes: run it again after an interruption (the Geant4 sets take ~2 CPU-hours
# each for pbwo4; the study ~6 CPU-hours in all, most of it sampling for the judgements).
#   scripts/adapt-study.sh [RUNS]      # default ~/caloforge-runs/adapt-study
# Two cores: run two studies side by side on the same RUNS, each with its own stages, e.g.
#   ONLY=adapted:1000,second scripts/adapt-study.sh RUNS & ONLY=scratch:10000 scripts/adapt-study.sh RUNS
# Another strategy of `caloforge adapt` in its own RUNS and table, e.g.
#   STRATEGY=bias LABEL=bias ONLY=adapted:1000 ADAPT_AT=300,1000 scripts/adapt-study.sh RUNS-bias
# (other knobs: SIZES, ORDER, SCRATCH_AT, N held-out showers).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-${RUNS:-$HOME/caloforge-runs}/adapt-study}"
scripts/make-datasets.sh pbwo4-train pbwo4-test allegro-train allegro-test
.venv/bin/python benchmarks/adapt_study.py --parent default \
  --train data/pbwo4-train.h5 --reference data/pbwo4-test.h5 -n "${N:-5000}" \
  --sizes "${SIZES:-100,1000,10000}" --order "${ORDER:-adapted:1000,scratch:10000}" \
  ${ONLY:+--only "$ONLY"} --strategy "${STRATEGY:-full}" \
  --adapt-steps 1000 --scratch-steps 3000 --every 100 \
  --adapt-evaluate-at "${ADAPT_AT:-100,300,1000}" --scratch-evaluate-at "${SCRATCH_AT:-300,1000,3000}" \
  --second data/allegro-train.h5 --second-of 1000 --second-reference data/allegro-test.h5 \
  --runs "$runs" --results "benchmarks/results/adapt_study${LABEL:+_$LABEL}.md"
