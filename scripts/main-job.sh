#!/usr/bin/env bash
# The main job: sample showers from the shipped default model at 10, 50 and 100 GeV and compare
# them with the Geant4 showers shipped at the same points (caloforge demo); report in demo/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
.venv/bin/caloforge demo --out demo/ --overwrite
