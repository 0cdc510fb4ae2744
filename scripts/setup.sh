#!/usr/bin/env bash
# Installs everything chargeverse needs on a fresh Debian 12 machine with Python 3.11 (run as root; idempotent):
# the Debian packages of the embedded stack, a project-local virtualenv, and the project with its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS="postgresql-15 postgresql-15-postgis-3 redis-server"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q $missing
fi

PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || { apt-get install -y -q python3-venv && "$PY" -m venv .venv; }
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
