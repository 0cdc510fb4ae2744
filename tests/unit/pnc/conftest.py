"""Registers the PKI fixtures of pnc_fixtures for this folder."""

from pnc_fixtures import cpo, mo, oem  # noqa: F401
