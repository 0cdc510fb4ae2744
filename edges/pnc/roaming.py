"""OCPI real-time authorization of our Plug & Charge contracts: a partner CPO whose charger saw one of our
contract certificates asks `POST /ocpi/emsp/2.2.1/tokens/{eMAID}/authorize?type=OTHER` (edges/ocpi/
tokens_sender.py).  This module is that request's reads; the rules are chargeverse/pnc/authorization.py's, the
same as OCPP 2.0.1 Authorize with iso15118CertificateHashData at our own chargers.

What is read (all projections, the OCPI edge's pool; never written): `pnc_enrolments` (is this eMAID one of our
contracts), `id_tokens` (the token the enrolment issued: the account's state), `contract_certificates` (revoked?
expired?), the fleet rules of the account (edges/ocpp/authorization.py `fleet_rules`, the OCPP edge's query),
and `stations.operator` for the network rule.

Invariants:
- an eMAID is matched in any spelling the emaid module accepts (separators or not, check digit or not; a wrong
  check digit only under the `pnc_check_digit_policy=flag` setting): it is looked up in its normal form;
- a uid that is not an eMAID, or an eMAID that is not one of our contracts, is not decided here (None: the
  sender's ordinary token path answers);
- the asked-about location is the calling CPO's: station id `roamed:<CPO country>:<CPO party>:<location id>`
  as streams/ocpi_directory names it, so a fleet's allowed stations and networks apply to roamed chargers too;
- when the member's fleet restricts stations or networks, nothing else refuses, and the CPO gave no
  LocationReferences, we cannot decide: OCPI 2002 (not enough information), as the spec asks, rather than
  ALLOWED everywhere (a refusal for another reason is answered without a location).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chargeverse.pnc.authorization import ContractCertificate, RoamingVerdict, contract_status, roaming_verdict
from chargeverse.pnc.emaid import CheckDigitPolicy
from chargeverse.pnc.emaid import parse as parse_emaid
from chargeverse.pnc.errors import PncRejection
from edges.ocpp.authorization import fleet_refusal, fleet_rules
from edges.ocpp.context import TokenRecord, decide
from streams.ocpi_directory.fold import station_id as roamed_station_id


class NeedLocation(Exception):
    """The fleet rules depend on where: the request must carry LocationReferences (OCPI 2002)."""


def normal_emaid(uid: str, check_digit_policy: str) -> str | None:
    """The eMAID's normal form (the `id_tokens` uid of a contract), or None when `uid` is not an eMAID."""
    policy = CheckDigitPolicy.FLAG if check_digit_policy == "flag" else CheckDigitPolicy.REJECT
    try:
        return parse_emaid(uid, policy).normalised
    except PncRejection:
        return None


async def contract_uid(conn: Any, uid: str, check_digit_policy: str) -> str | None:
    """The normal-form eMAID when `uid` names one of our enrolled contracts, else None."""
    emaid = normal_emaid(uid, check_digit_policy)
    if emaid is None:
        return None
    cur = await conn.execute("SELECT 1 FROM pnc_enrolments WHERE emaid = %s UNION ALL "
                             "SELECT 1 FROM contract_certificates WHERE emaid = %s LIMIT 1", (emaid, emaid))
    return emaid if await cur.fetchone() is not None else None


async def contract_verdict(conn: Any, *, emaid: str, token: TokenRecord, cpo: tuple[str, str] | None,
                           location_id: str | None, now: datetime) -> RoamingVerdict:
    """The OCPI answer for the contract `emaid` whose id token is `token`, asked by `cpo` about `location_id`."""
    cur = await conn.execute("SELECT status, not_after, issued_at FROM contract_certificates WHERE emaid = %s",
                             (emaid,))
    contract = contract_status([ContractCertificate(*r) for r in await cur.fetchall()], now)
    token_status = decide(token.uid, None, token, now, unknown="Unknown").status
    rules: list[Any] = []
    if token_status == "Accepted" and token.account_id:
        rules = (await fleet_rules(conn, [token.account_id])).get(token.account_id, [])
    verdict = roaming_verdict(token_status, contract, fleet_refusal(rules, None, None), None)
    if verdict.allowed != "ALLOWED" or not any(r.allowed_station_ids is not None or r.allowed_networks is not None
                                               for r in rules):
        return verdict
    if location_id is None or cpo is None:  # only now: a refusal for another reason needs no location
        raise NeedLocation("the driver's fleet limits where it may charge: give LocationReferences")
    station = roamed_station_id(cpo[0], cpo[1], location_id)
    cur = await conn.execute("SELECT operator FROM stations WHERE station_id = %s", (station,))
    row = await cur.fetchone()
    return roaming_verdict(token_status, contract, None, fleet_refusal(rules, station, row[0] if row else None))
