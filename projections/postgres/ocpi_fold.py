"""How pushed OCPI objects become stored documents: exact JSON, PUT/PATCH merges, the Location tree.  Pure: no I/O.

Used by the OCPI objects projection (to fold events into rows) and by the edge (to read a stored document).

Invariants:
- **Verbatim.** A whole object that is PUT or pulled is stored as the exact text the partner sent.  Only a merge
  (PATCH, or PUT of an EVSE/Connector into its Location) re-serialises, and then numbers keep their spelling
  (`2.00` stays `2.00`: JSON numbers are read as Decimal and written back from it), keys keep their order, and
  fields we do not know are kept.
- **PATCH is a shallow replace** (OCPI 2.2.1 "Transport and format": fields given replace the stored ones, a list
  replaces the whole list, fields left out stay).  A PATCH on, or a PUT of, an EVSE or Connector also sets the
  `last_updated` of its parents (OCPI 2.2.1 Locations, receiver PUT/PATCH).
- **Nothing half-applied.** Every fold returns a new document or None (target missing); it never mutates its input.
- **Case-insensitive ids.** OCPI ids are CiStrings: EVSE uids and connector ids match regardless of case.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

# ---- exact JSON ------------------------------------------------------------------------------------------------


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number as Decimal (so `2.00` survives a round trip)."""
    return json.loads(text, parse_float=Decimal)


def dumps(obj: Any) -> str:
    """Compact JSON of dicts, lists, str, int, Decimal, bool and None; Decimals are written as they were read."""
    parts: list[str] = []
    _dump(obj, parts)
    return "".join(parts)


_encode_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _dump(obj: Any, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, (int, Decimal)):
        out.append(str(obj))  # a Decimal prints exactly as it was read (1E+2 stays 1E+2: still JSON)
    elif isinstance(obj, float):
        out.append(repr(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for k, v in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(str(k)))
            out.append(":")
            _dump(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _dump(v, out)
        out.append("]")
    else:
        raise TypeError(f"not JSON: {type(obj).__name__}")


# ---- dates -----------------------------------------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime | None:
    """An OCPI DateTime (RFC 3339; no designator means UTC) as an aware UTC datetime; None if not one."""
    if not isinstance(value, str) or len(value) < 19 or value[10] not in "Tt":
        return None
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


# ---- ids -------------------------------------------------------------------------------------------------------


def ci(value: str) -> str:
    """The key form of a CiString."""
    return value.upper()


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.upper() == b.upper()


# ---- the Location tree -----------------------------------------------------------------------------------------


def find_evse(location: dict[str, Any], evse_uid: str) -> dict[str, Any] | None:
    for e in location.get("evses") or []:
        if isinstance(e, dict) and _same(e.get("uid"), evse_uid):
            return e
    return None


def find_connector(evse: dict[str, Any], connector_id: str) -> dict[str, Any] | None:
    for c in evse.get("connectors") or []:
        if isinstance(c, dict) and _same(c.get("id"), connector_id):
            return c
    return None


def extract(location: dict[str, Any], evse_uid: str | None = None,
            connector_id: str | None = None) -> dict[str, Any] | None:
    """The Location, one of its EVSEs or one connector of that EVSE; None when absent."""
    if evse_uid is None:
        return location
    evse = find_evse(location, evse_uid)
    if evse is None or connector_id is None:
        return evse
    return find_connector(evse, connector_id)


def _touch(obj: dict[str, Any], last_updated: Any) -> None:
    if last_updated is not None:
        obj["last_updated"] = last_updated


def put_into_location(location: dict[str, Any], body: dict[str, Any], evse_uid: str,
                      connector_id: str | None) -> dict[str, Any] | None:
    """The Location after a PUT of an EVSE (connector_id None) or a Connector; None if the EVSE of a connector PUT
    does not exist.  A new EVSE or connector is appended, an existing one replaced in place."""
    loc = copy.deepcopy(location)
    stamp = body.get("last_updated")
    evses = loc.get("evses")
    if not isinstance(evses, list):
        evses = loc["evses"] = []
    if connector_id is None:
        for i, e in enumerate(evses):
            if isinstance(e, dict) and _same(e.get("uid"), evse_uid):
                evses[i] = copy.deepcopy(body)
                break
        else:
            evses.append(copy.deepcopy(body))
        _touch(loc, stamp)
        return loc
    evse = find_evse(loc, evse_uid)
    if evse is None:
        return None
    conns = evse.get("connectors")
    if not isinstance(conns, list):
        conns = evse["connectors"] = []
    for i, c in enumerate(conns):
        if isinstance(c, dict) and _same(c.get("id"), connector_id):
            conns[i] = copy.deepcopy(body)
            break
    else:
        conns.append(copy.deepcopy(body))
    _touch(evse, stamp)
    _touch(loc, stamp)
    return loc


def patch_object(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A shallow PATCH: every field given replaces the stored one; the rest stays."""
    out = copy.deepcopy(obj)
    for k, v in patch.items():
        out[k] = copy.deepcopy(v)
    return out


def patch_location(location: dict[str, Any], patch: dict[str, Any], evse_uid: str | None = None,
                   connector_id: str | None = None) -> dict[str, Any] | None:
    """The Location after a PATCH on itself, one of its EVSEs or one connector; None if the target is absent."""
    if evse_uid is None:
        return patch_object(location, patch)
    loc = copy.deepcopy(location)
    stamp = patch.get("last_updated")
    evse = find_evse(loc, evse_uid)
    if evse is None:
        return None
    if connector_id is None:
        evse.update(copy.deepcopy(patch))
        _touch(loc, stamp)
        return loc
    conn = find_connector(evse, connector_id)
    if conn is None:
        return None
    conn.update(copy.deepcopy(patch))
    _touch(evse, stamp)
    _touch(loc, stamp)
    return loc


def point_of(location: dict[str, Any]) -> tuple[float, float] | None:
    """(longitude, latitude) of a Location's coordinates, when they are numbers in range."""
    c = location.get("coordinates")
    if not isinstance(c, dict):
        return None
    try:
        lat, lon = float(c.get("latitude")), float(c.get("longitude"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lon, lat
