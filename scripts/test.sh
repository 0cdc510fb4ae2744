#!/usr/bin/env bash
# Command 2: install, then run the whole test suite (it starts its own broker and stores on free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
