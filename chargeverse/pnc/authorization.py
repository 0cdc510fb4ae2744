"""Whether a Plug & Charge contract may charge now: the one rule set behind OCPP 2.0.1 Authorize with
iso15118CertificateHashData (our own chargers) and OCPI real-time authorization with the eMAID as token uid
(roamed chargers).  Pure: no I/O, `now` is passed in.

Why one module: a driver must get the same answer from our charger and from a partner's.  The three inputs are
decided by one function each and never re-implemented by an edge:
- the contract certificate (this module: `certificate_status`, `contract_status`);
- the account's id token: edges/ocpp/context.py `decide` (Blocked, Expired, Invalid ...);
- the fleet rules: edges/ocpp/authorization.py `fleet_refusal` (budget, allowed stations / networks).
OCPP reports the certificate in `certificateStatus` and the rest in `idTokenInfo`; OCPI has one `allowed`
value, so `roaming_verdict` folds the three into it.

Invariants:
- a certificate is good only while it is unrevoked and `now` is before its `not_after`;
- a contract (an eMAID, possibly several certificates after renewals) is good while any of its certificates is;
  otherwise it is what its most recently issued certificate is (revoked or expired), NONE when it has none;
- a revoked contract is never ALLOWED, an expired one never ALLOWED, a contract with no certificate never
  ALLOWED, whatever the id token says;
- OCPI precedence, first match wins: token blocked or contract revoked -> BLOCKED; token or contract expired ->
  EXPIRED; token not Accepted (Invalid, Unknown) or no certificate -> NOT_ALLOWED; fleet budget spent ->
  NO_CREDIT; station / network not allowed by the fleet -> NOT_ALLOWED; else ALLOWED.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence

ALLOWED, BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED = "ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"


class ContractStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NONE = "none"  # enrolled, but no certificate issued yet


#: OCPP 2.0.1 AuthorizeCertificateStatusEnumType of a contract we found among the hash data
OCPP_CERTIFICATE_STATUS: dict[ContractStatus, str] = {
    ContractStatus.GOOD: "Accepted",
    ContractStatus.REVOKED: "CertificateRevoked",
    ContractStatus.EXPIRED: "CertificateExpired",
    ContractStatus.NONE: "NoCertificateAvailable",
}


@dataclass(frozen=True)
class ContractCertificate:
    """What the rules need of one certificate (a row of `contract_certificates`)."""

    status: str  # 'good' or 'revoked' as the projection stores it
    not_after: dt.datetime
    issued_at: dt.datetime


def certificate_status(status: str, not_after: dt.datetime, now: dt.datetime) -> ContractStatus:
    """One certificate: revoked wins over expired (the stronger statement); anything not 'good' is revoked."""
    if status != "good":
        return ContractStatus.REVOKED
    if not_after <= now:
        return ContractStatus.EXPIRED
    return ContractStatus.GOOD


def contract_status(certificates: Sequence[ContractCertificate], now: dt.datetime) -> ContractStatus:
    """An eMAID's contract over all its certificates (renewals leave the older one good until it expires)."""
    if not certificates:
        return ContractStatus.NONE
    states = [certificate_status(c.status, c.not_after, now) for c in certificates]
    if ContractStatus.GOOD in states:
        return ContractStatus.GOOD
    latest = max(range(len(certificates)), key=lambda i: certificates[i].issued_at)
    return states[latest]


@dataclass(frozen=True)
class RoamingVerdict:
    allowed: str  # OCPI 2.2.1 AllowedType
    reason: str | None  # for the log and the driver (AuthorizationInfo.info); None when ALLOWED


def roaming_verdict(token_status: str, contract: ContractStatus, budget_refusal: str | None,
                    place_refusal: str | None) -> RoamingVerdict:
    """OCPI `allowed` for a contract token.

    `token_status`: the OCPP decision for the id token (edges/ocpp/context.py `decide`: Accepted, Blocked,
    Expired, Invalid, Unknown); `budget_refusal`: `fleet_refusal(rules, None, None)` (budget only);
    `place_refusal`: `fleet_refusal(rules, station_id, network)` for the asked-about location (None when no
    location was given or it is allowed).
    """
    if token_status == "Blocked":
        return RoamingVerdict(BLOCKED, "the contract's account token is blocked")
    if contract is ContractStatus.REVOKED:
        return RoamingVerdict(BLOCKED, "the contract certificate is revoked")
    if token_status == "Expired":
        return RoamingVerdict(EXPIRED, "the contract's token has expired")
    if contract is ContractStatus.EXPIRED:
        return RoamingVerdict(EXPIRED, "the contract certificate has expired")
    if token_status != "Accepted":
        return RoamingVerdict(NOT_ALLOWED, f"the contract's token is {token_status.lower()}")
    if contract is ContractStatus.NONE:
        return RoamingVerdict(NOT_ALLOWED, "no contract certificate has been issued for this eMAID")
    if budget_refusal:
        return RoamingVerdict(NO_CREDIT, budget_refusal)
    if place_refusal:
        return RoamingVerdict(NOT_ALLOWED, place_refusal)
    return RoamingVerdict(ALLOWED, None)
