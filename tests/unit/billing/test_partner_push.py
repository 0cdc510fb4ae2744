"""A partner session's priced CDR (billing's partner path) becomes one POST to that eMSP only
(streams/ocpi_push/fold.py: PRIVATE, CHANGES ONLY), straight from the event billing emits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from streams.ocpi_push.fold import Lookups, Policy, Target, apply, state_key

from test_partner_billing import _lookups, _run as _bill, _session

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
POL = Policy(platform_id="cy", country_code="NL", party_id="CPY")
EMX = Target("x", "NL", "EMX", T0 - timedelta(days=1))
OTHER = Target("z", "DE", "ZZZ", T0 - timedelta(days=1))


def _priced() -> dict[str, Any]:
    _, outs = _bill(_session(), _lookups())
    return outs[0][3]


def _push(rec: dict[str, Any], owner: Target | None) -> tuple[Any, list[Any]]:
    look = Lookups(emsps=lambda module: [EMX, OTHER], token_owner=lambda uid: owner)
    key = state_key("CdrPriced", rec)
    assert key == "cdr:S1"
    return apply(None, "CdrPriced", rec, look, POL)


def test_private_the_cdr_goes_to_the_emsp_that_gave_us_the_token_verbatim_once() -> None:
    rec = _priced()
    state, outs = _push(rec, EMX)
    assert [(o[0], o[1], o[3]["module"], o[3]["method"], o[3]["object_id"]) for o in outs] == [
        ("ocpi.outbound", "x", "cdrs", "POST", "S1")]
    assert outs[0][3]["body"] == rec["cdr"] and (outs[0][3]["to_country_code"], outs[0][3]["to_party_id"]) == (
        "NL", "EMX")
    assert json.loads(outs[0][3]["body"])["total_cost"]["incl_vat"] == 6.05
    again = apply(state, "CdrPriced", rec, Lookups(emsps=lambda m: [EMX], token_owner=lambda u: EMX), POL)
    assert again[1] == []


def test_private_another_party_holding_the_same_uid_never_gets_it() -> None:
    assert _push(_priced(), OTHER)[1] == []
    assert _push(_priced(), None)[1] == []
