#!/usr/bin/env bash
# The main job: the shipped CaloDiT model against real Geant4 showers shipped in the package.
# Samples 1,500 par04-siw photon showers at 10, 50 and 100 GeV (theta = pi/2, phi = 0) from the
# default model and compares them with the Geant4 showers at the same points with
# `caloforge evaluate`: demo/generated.h5 and the report demo/report/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
.venv/bin/caloforge demo --out demo/ --overwrite
