"""The OCPP versions this edge speaks, as one shape each, negotiated by the WebSocket subprotocol.

A version is a subpackage with the same parts (DESIGN.md §6): error spellings and framing dialect
(`__init__`), schemas and action sets (`validation`), answers (`handlers`).  The edge only sees the `Version`
bundle below, so adding a version is one more entry in `VERSIONS`.  Order is preference: when a charger offers
several, the newest one both sides speak wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edges.ocpp import framing
from edges.ocpp.context import Context, Needs
from edges.ocpp.schemas import SchemaSet


@dataclass(frozen=True)
class Version:
    subprotocol: str
    dialect: framing.Dialect
    schemas: SchemaSet
    cp_initiated: frozenset[str]
    cs_initiated: frozenset[str]
    certificate_operations: frozenset[str]
    handlers: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]]
    needs: dict[str, Callable[[dict[str, Any]], Needs]]
    #: (vendor, model) of a BootNotification payload, read leniently (the payload may still be invalid)
    identify: Callable[[dict[str, Any]], tuple[str | None, str | None]]


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _identify_16(p: dict[str, Any]) -> tuple[str | None, str | None]:
    return _str(p.get("chargePointVendor")), _str(p.get("chargePointModel"))


def _identify_201(p: dict[str, Any]) -> tuple[str | None, str | None]:
    cs = p.get("chargingStation")
    return (_str(cs.get("vendorName")), _str(cs.get("model"))) if isinstance(cs, dict) else (None, None)


def _build() -> dict[str, Version]:
    from edges.ocpp import v16, v201
    from edges.ocpp.v16 import handlers as h16
    from edges.ocpp.v16 import validation as val16
    from edges.ocpp.v201 import handlers as h201
    from edges.ocpp.v201 import validation as val201

    versions = [
        Version(v201.SUBPROTOCOL, v201.DIALECT, val201.SCHEMA_SET, val201.CP_INITIATED, val201.CS_INITIATED,
                val201.CERTIFICATE_OPERATIONS, h201.HANDLERS, h201.NEEDS, _identify_201),
        Version(v16.SUBPROTOCOL, v16.DIALECT, val16.SCHEMA_SET, val16.CP_INITIATED, val16.CS_INITIATED,
                val16.CERTIFICATE_OPERATIONS, h16.HANDLERS, h16.NEEDS, _identify_16),
    ]
    return {v.subprotocol: v for v in versions}


VERSIONS: dict[str, Version] = _build()
#: subprotocols in order of preference (newest first)
SUBPROTOCOLS: tuple[str, ...] = tuple(VERSIONS)
