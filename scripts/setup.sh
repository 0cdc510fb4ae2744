#!/usr/bin/env bash
# Installs everything chargeverse needs on a fresh Debian 12 machine with Python 3.11 (run as root; idempotent):
# the Debian packages of the embedded stack, a project-local virtualenv, and the project with its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS="postgresql-15 postgresql-15-postgis-3 redis-server default-jre-headless"  # JRE: ISO 15118-2 EXI codec
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

# ISO 15118-2 EXI codec for Plug & Charge (chargeverse/pnc/exi.py): EXIficient's EXICodec.jar, taken out of the
# iso15118 wheel from PyPI (hash-pinned). The package itself is not installed: it pins pydantic 1 / cryptography 44.
EXI_JAR=.venv/share/chargeverse/EXICodec.jar
EXI_WHEEL=iso15118-0.31.2-py3-none-any.whl
EXI_WHEEL_SHA256=2e1fd191888ca5f5f3a34ccd0588611dba1cb6f33bbe7ad0588bab0cfe48d45a
if [ ! -f "$EXI_JAR" ]; then
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d "$tmp" iso15118==0.31.2
  echo "$EXI_WHEEL_SHA256  $tmp/$EXI_WHEEL" | sha256sum -c --quiet -
  mkdir -p "$(dirname "$EXI_JAR")"
  .venv/bin/python -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("iso15118/shared/EXICodec.jar"))' \
    "$tmp/$EXI_WHEEL" "$EXI_JAR.part"
  mv "$EXI_JAR.part" "$EXI_JAR"
  rm -rf "$tmp"
fi

# An independent OCPI implementation (extrawest-ocpi) for tests/integration/test_ocpi_independent.py, in its own
# venv because it pins pydantic 1 / fastapi 0.101 (tests/peers/extrawest-requirements.txt says why).
PEER_REQ=tests/peers/extrawest-requirements.txt
peer_stamp=.venv-peers/ocpi/.installed-$(sha256sum "$PEER_REQ" | cut -c1-16)
if [ ! -f "$peer_stamp" ]; then
  rm -rf .venv-peers/ocpi
  "$PY" -m venv .venv-peers/ocpi
  .venv-peers/ocpi/bin/python -m pip install -q -r "$PEER_REQ"
  touch "$peer_stamp"
fi
