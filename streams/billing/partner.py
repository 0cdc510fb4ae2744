"""Sessions at our stations started with a roaming partner's token: who pays, what the partner's CDR says.

Why a module of its own: a driver of an eMSP we roam with (its Tokens pushed to our OCPI Tokens receiver) charges
at one of our stations.  We price the session with our own tariff exactly as a driver's session (the same tariff
engine, the same checks), but the payer is not a driver account: the eMSP owes us the session (OCPI: the CPO sends
the CDR, the eMSP pays the CPO and bills its own driver).  So
- the ledger plan is "Dr emsp:<CC>-<PARTY>:receivable (gross) / Cr platform:charging:revenue (net) /
  Cr tax:<CC>:vat_payable (VAT)" - the own-station plan (ledger/billing/postings_plan.py (a)) with the partner's
  receivable as the payer's;
- the CDR is the one we send the eMSP: `cdr_token` names the eMSP's party, the token's uid, type and contract id
  (as the eMSP gave them to us), `cdr_location` is a snapshot of the station at the session's start in the form
  OCPI 2.2.1 requires (address, city, country, coordinates, EVSE, connector standard/format/power type), and our
  tariff is embedded as our party's.

Pure: plain data in, plain data out; the lookups that feed it live in streams/billing/processor.py.

Invariants (tests/unit/billing/test_partner_billing.py names each):
- BALANCED: the plan balances (PostingPlan refuses anything else) and its only receivable is the partner's;
- PARTNER KEY: the plan's ledger key and the CdrPriced key are the partner's owner key `emsp:<CC>-<PARTY>`, so a
  partner's postings sit in one ledger partition, like a driver's;
- SPEC SHAPE: the CDR built here validates as an OCPI 2.2.1 CDR (edges/ocpi/models.py, what a partner checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from edges.ocpi.cpo_locations import ConnectorRow, connector_doc, evse_uid
from edges.ocpi.cpo_objects import tariff_doc
from ledger.billing import account_names as names
from ledger.billing.cdr_checks import Price
from ledger.billing.postings_plan import (
    REVENUE_CHARGING, Leg, PlanKind, PostingPlan, Side, gross_net_vat,
)
from ledger.billing.money import fmt

#: OCPI TokenType values (a partner's Token carries one of these)
TOKEN_TYPES = frozenset({"AD_HOC_USER", "APP_USER", "OTHER", "RFID"})


@dataclass(frozen=True, slots=True)
class EmspPayer:
    """A roaming partner (an eMSP) paying for its driver's session at our station."""

    country_code: str
    party_id: str
    partner_id: str | None = None

    @property
    def party(self) -> str:
        """'NL-EMX' (ValueError when not an OCPI party)."""
        return names.cpo_party(self.country_code, self.party_id)

    @property
    def receivable(self) -> str:
        return f"emsp:{self.party}:receivable"

    @property
    def key(self) -> str:
        return f"emsp:{self.party}"

    def metadata(self) -> dict[str, str]:
        md = {"payer": "EMSP", "emsp": self.party}
        if self.partner_id:
            md["partner_id"] = self.partner_id
        return md


def payer_of(partner: Mapping[str, Any]) -> EmspPayer:
    """The payer of a partner token as the processor looked it up (`{"country_code", "party_id", "partner_id"}`);
    ValueError (KeyError) when the token's party is not an OCPI party (or missing)."""
    payer = EmspPayer(str(partner["country_code"]).upper(), str(partner["party_id"]).upper(),
                      partner.get("partner_id"))
    names.cpo_party(payer.country_code, payer.party_id)
    return payer


def partner_session_plan(*, source_event_id: str, session_id: str, payer: EmspPayer, total_cost: Price,
                         currency: str, vat_country: str) -> PostingPlan:
    """Receivable from the partner (gross) / our charging revenue (net) / VAT due (gross - net)."""
    gross, net, vat = gross_net_vat(total_cost, currency)
    if net < 0:
        raise ValueError(f"net cost is negative ({fmt(net)}); post a reversal instead")
    if vat < 0:
        raise ValueError(f"negative VAT ({fmt(vat)}): check_cdr should have rejected this CDR")
    legs = tuple(Leg(acc, side, amt, currency) for acc, side, amt in (
        (payer.receivable, Side.DEBIT, gross),
        (REVENUE_CHARGING, Side.CREDIT, net),
        (names.vat_payable(vat_country), Side.CREDIT, vat)) if amt != 0)
    md = {**payer.metadata(), "vat_country": names.vat_country(vat_country)}
    return PostingPlan(PlanKind.OWN_SESSION_CHARGE, source_event_id, session_id, payer.key, legs, md)


def cdr_token(partner: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """OCPI CdrToken of a partner's token: its party, uid, type and contract id as the eMSP gave them."""
    ttype = partner.get("type")
    return {"country_code": str(partner["country_code"]).upper(), "party_id": str(partner["party_id"]).upper(),
            "uid": str(partner.get("uid") or uid), "type": ttype if ttype in TOKEN_TYPES else "RFID",
            "contract_id": str(partner.get("contract_id") or uid)}


def cdr_location(location: Mapping[str, Any], station_id: str, connector_id: int, *, country: str,
                 stamp: datetime) -> dict[str, Any]:
    """OCPI CdrLocation: a snapshot of the station (the `location_of` lookup) where the session ran; address and
    city `#NA` where our station registration records none (as edges/ocpi/cpo_locations.py does)."""
    conns = location.get("connectors") or {}
    c = conns.get(str(connector_id)) or {}
    conn = connector_doc(ConnectorRow(connector_id, c.get("standard"), c.get("max_power_kw"), None, None), stamp)
    uid = evse_uid(station_id, connector_id)
    loc: dict[str, Any] = {"id": station_id}
    if location.get("name"):
        loc["name"] = str(location["name"])[:255]
    loc.update(address=str(location.get("address") or "#NA")[:45], city=str(location.get("city") or "#NA")[:45],
               country=country,
               coordinates={"latitude": f"{float(location.get('latitude') or 0.0):.6f}",
                            "longitude": f"{float(location.get('longitude') or 0.0):.6f}"},
               evse_uid=uid, evse_id=uid, connector_id=conn["id"], connector_standard=conn["standard"],
               connector_format=conn["format"], connector_power_type=conn["power_type"])
    return loc


def partner_tariff(tariff: Mapping[str, Any], *, country_code: str, party_id: str,
                   last_updated: datetime) -> dict[str, Any]:
    """Our tariff as embedded in a partner's CDR: our party's, id kept (the charging periods name it)."""
    return tariff_doc(dict(tariff), country_code=country_code, party_id=party_id, tariff_id=str(tariff["id"]),
                      last_updated=last_updated)
