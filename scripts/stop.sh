#!/usr/bin/env bash
# Command 3: stop every service and the embedded stack cleanly (nothing is lost; `scripts/demo.sh` resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/cv down
