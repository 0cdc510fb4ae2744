#!/usr/bin/env bash
# Command 1: install, then run the platform on the embedded stack with simulated chargers (in the background).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cv up --demo "${CV_DEMO_CHARGERS:-5}" --demo-duration "${CV_DEMO_SECONDS:-3600}"
