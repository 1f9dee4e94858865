#!/usr/bin/env bash
# Set up (once) and run the default test suite (slow tests excluded; add `-m slow` for those).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh test
exec .venv/bin/python -m pytest "$@"
