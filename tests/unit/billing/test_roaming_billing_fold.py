"""The roaming billing fold's invariants (streams/roaming_billing/fold.py): a partner's CDR is posted as sent
(authoritative), re-priced from the partner's tariff and reported when it disagrees, reviewed when it cannot be
posted, once per CDR, with deterministic ids and balanced postings."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from chargeverse.avro import default_codec
from chargeverse.events import envelope
from ledger.billing.discrepancy import Threshold
from ledger.billing.postings_plan import RoamingFee
from projections.postgres.ocpi_fold import dumps
from streams.roaming_billing.fold import Lookups, Policy, apply, state_key

from conftest import OCPI_EXAMPLES, TANDEMDRIVE, load

PLATFORM = "cv-test"
EXAMPLE_TARIFF = load(OCPI_EXAMPLES / "cdr_example.json")["tariffs"][0]  # '12': TIME 2.00/h, step 300 s, VAT 10 %


def _event(cdr: Any, *, module: str = "cdrs", valid: bool = True, method: str = "POST", platform: str = PLATFORM,
           raw: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    rec = envelope(source="t", correlation_id="c1", event_id=event_id)
    rec.update(platform_id=platform, partner_id="hub", module=module, method=method,
               country_code=cdr.get("country_code", "BE") if isinstance(cdr, dict) else "BE",
               party_id=cdr.get("party_id", "BEC") if isinstance(cdr, dict) else "BEC",
               object_id=str(cdr.get("id", "X")) if isinstance(cdr, dict) else "X", evse_uid=None, connector_id=None,
               token_type=None, raw=raw if raw is not None else dumps(cdr), valid=valid, errors=[], warnings=[],
               request_id=None, from_country_code=None, from_party_id=None)
    return rec


def _lookups(tariffs: dict[str, Any] | None = None, account: str | None = "acc-7",
             zone: str | None = None) -> tuple[Lookups, list[tuple[str, ...]]]:
    asked: list[tuple[str, ...]] = []

    def tariff_of(partner: str, cc: str, party: str, tid: str) -> Any:
        asked.append((partner, cc, party, tid))
        return (tariffs or {}).get(tid)

    return Lookups(tariff_of=tariff_of, payer_of=lambda uid: {"account_id": account} if account else None,
                   time_zone_of=lambda *_: zone), asked


def _run(events: list[dict[str, Any]], lookups: Lookups, policy: Policy = Policy(platform_id=PLATFORM)):
    states: dict[str, Any] = {}
    outs = []
    for rec in events:
        k = state_key(rec)
        states[k], o = apply(states.get(k), "OcpiObjectReceived", rec, lookups, policy)
        outs.extend(o)
    return states, outs


def _types(outs) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(topic, etype) for topic, _, etype, _ in outs]


def _balanced(entries: list[dict[str, str]]) -> Decimal:
    dr = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "DEBIT")
    cr = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "CREDIT")
    assert dr == cr
    return dr


def test_a_partner_cdr_is_priced_roamed_and_posted_balanced_at_the_partners_total(cdr_example) -> None:  # noqa: ANN001
    lookups, asked = _lookups({"12": EXAMPLE_TARIFF})
    _, outs = _run([_event(cdr_example)], lookups)
    assert _types(outs) == [("billing", "CdrPriced"), ("ledger", "LedgerPostingSet")]
    priced = outs[0][3]
    assert priced["origin"] == "ROAMED" and priced["account_id"] == "acc-7" and outs[0][1] == "acc-7"
    assert priced["total_cost_excl_vat"] == "4.00" and priced["total_cost_incl_vat"] == "4.40"
    assert (priced["partner_country_code"], priced["partner_party_id"], priced["cdr_id"]) == ("BE", "BEC", "12345")
    assert priced["cdr"] == dumps(cdr_example)  # the partner's CDR verbatim
    assert priced["session_id"] == "roamed:BE:BEC:12345"
    ledger = outs[1][3]
    assert outs[1][1] == ledger["ledger_key"]
    assert _balanced(ledger["entries"]) == Decimal("4.40")
    accounts = {e["account"]: (e["direction"], e["amount"]) for e in ledger["entries"]}
    assert any(a.startswith("cpo:") and v == ("CREDIT", "4.40") for a, v in accounts.items())
    assert asked == [("hub", "BE", "BEC", "12")]  # the partner's tariff was asked for, under its party


def test_every_output_passes_the_avro_codec(cdr_example) -> None:  # noqa: ANN001
    codec = default_codec()
    disagreeing = dict(copy.deepcopy(EXAMPLE_TARIFF))
    disagreeing["elements"][0]["price_components"][0]["price"] = Decimal("3.00")
    _, outs = _run([_event(cdr_example)], _lookups({"12": disagreeing})[0])
    _, review = _run([_event(dict(cdr_example, id="bad", total_energy=Decimal("-1")))], _lookups()[0])
    assert {t for _, _, t, _ in outs + review} == {"CdrPriced", "LedgerPostingSet", "BillingDiscrepancy",
                                                   "BillingReview"}
    for _, _, etype, rec in outs + review:
        assert codec.decode(codec.encode(etype, rec)) == (etype, rec)


def test_a_cdr_that_disagrees_with_the_partners_tariff_is_reported_and_still_posted(cdr_example) -> None:  # noqa: ANN001
    published = copy.deepcopy(EXAMPLE_TARIFF)
    published["elements"][0]["price_components"][0]["price"] = Decimal("1.50")  # they advertised 1.50/h
    _, outs = _run([_event(cdr_example)], _lookups({"12": published})[0])
    assert _types(outs) == [("billing", "CdrPriced"), ("billing", "BillingDiscrepancy"), ("ledger", "LedgerPostingSet")]
    d = outs[1][3]
    flagged = {x["field"]: x for x in d["differences"] if x["flagged"]}
    assert flagged["total_cost.excl_vat"]["partner"] == "4.00" and flagged["total_cost.excl_vat"]["ours"] == "3.00"
    assert d["tariff_id"] == "12" and d["partner_cdr"] == dumps(cdr_example)
    assert _balanced(outs[2][3]["entries"]) == Decimal("4.40")  # the partner's figure is what is posted


def test_a_difference_within_the_threshold_is_not_reported(cdr_example) -> None:  # noqa: ANN001
    cdr = copy.deepcopy(cdr_example)
    cdr["total_cost"] = {"excl_vat": Decimal("4.03"), "incl_vat": Decimal("4.43")}
    cdr["total_time_cost"] = {"excl_vat": Decimal("4.03"), "incl_vat": Decimal("4.43")}
    _, outs = _run([_event(cdr)], _lookups({"12": EXAMPLE_TARIFF})[0])
    assert "BillingDiscrepancy" not in [t for _, _, t, _ in outs]
    tight = Policy(platform_id=PLATFORM, threshold=Threshold(Decimal("0.01"), Decimal("0")))
    _, outs = _run([_event(cdr)], _lookups({"12": EXAMPLE_TARIFF})[0], tight)
    assert "BillingDiscrepancy" in [t for _, _, t, _ in outs]


def test_without_the_published_tariff_the_embedded_copy_reprices_it(cdr_example) -> None:  # noqa: ANN001
    _, outs = _run([_event(cdr_example)], _lookups({})[0])
    assert _types(outs) == [("billing", "CdrPriced"), ("ledger", "LedgerPostingSet")]
    assert "tariff_source=embedded" in outs[1][3]["memo"]


@pytest.mark.parametrize("mutate, reason", [
    (lambda c: c.update(total_cost={"excl_vat": Decimal("9.00"), "incl_vat": Decimal("9.90")}), "TOTAL_COST_MISMATCH"),
    (lambda c: (c.pop("tariffs"), c["charging_periods"][0].update(tariff_id="NOPE")), "UNKNOWN_TARIFF"),
    (lambda c: c.update(total_energy=Decimal("-2")), "NEGATIVE_ENERGY"),
    (lambda c: c.update(end_date_time="2015-06-29T20:00:00Z"), "END_BEFORE_START"),
    (lambda c: c["tariffs"][0].update(currency="USD"), "CURRENCY_MISMATCH"),
])
def test_a_bad_cdr_goes_to_review_with_its_reason_and_is_never_posted(cdr_example, mutate, reason) -> None:  # noqa: ANN001
    mutate(cdr_example)
    states, outs = _run([_event(cdr_example)], _lookups({})[0])
    assert _types(outs) == [("billing", "BillingReview")]
    review = outs[0][3]
    assert reason in {r["code"] for r in review["reasons"]}
    assert review["payload"] == dumps(cdr_example) and review["payload_type"] == "ocpi-2.2.1/CDR"
    assert list(states.values())[0]["outcome"] == "REVIEW"


def test_a_token_no_account_owns_goes_to_review(cdr_example) -> None:  # noqa: ANN001
    _, outs = _run([_event(cdr_example)], _lookups({"12": EXAMPLE_TARIFF}, account=None)[0])
    assert _types(outs) == [("billing", "BillingReview")]
    assert [r["code"] for r in outs[0][3]["reasons"]] == ["NO_ACCOUNT"]


def test_a_credit_cdr_goes_to_review_not_to_the_ledger(cdr_example) -> None:  # noqa: ANN001
    credit = dict(cdr_example, id="C-1", credit=True, credit_reference_id="12345",
                  total_cost={"excl_vat": Decimal("-4.00"), "incl_vat": Decimal("-4.40")})
    credit.pop("total_time_cost")
    _, outs = _run([_event(credit)], _lookups({"12": EXAMPLE_TARIFF})[0])
    assert _types(outs) == [("billing", "BillingReview")]
    assert "CREDIT_CDR" in {r["code"] for r in outs[0][3]["reasons"]}


def test_a_resent_cdr_changes_nothing(cdr_example) -> None:  # noqa: ANN001
    lookups, asked = _lookups({"12": EXAMPLE_TARIFF})
    first, again = _event(cdr_example), _event(cdr_example, method="PULL")  # a retry, then a pull of the same CDR
    states, outs = _run([first, again], lookups)
    assert _types(outs) == [("billing", "CdrPriced"), ("ledger", "LedgerPostingSet")]
    assert len(asked) == 1  # looked up once: the outcome is in the state
    bad = _event(dict(cdr_example, total_energy=Decimal("-1")))
    states2, outs2 = _run([bad, bad], _lookups()[0])
    assert _types(outs2) == [("billing", "BillingReview")]


def test_output_ids_derive_from_the_inbound_event(cdr_example) -> None:  # noqa: ANN001
    ev = _event(cdr_example)
    _, a = _run([ev], _lookups({"12": EXAMPLE_TARIFF})[0])
    _, b = _run([copy.deepcopy(ev)], _lookups({"12": EXAMPLE_TARIFF})[0])
    assert a == b
    assert all(o[3]["causation_id"] == ev["event_id"] for o in a)
    _, c = _run([_event(cdr_example)], _lookups({"12": EXAMPLE_TARIFF})[0])  # another event: other ids
    assert {o[3]["event_id"] for o in a}.isdisjoint({o[3]["event_id"] for o in c})


@pytest.mark.parametrize("kw", [dict(module="tariffs"), dict(valid=False), dict(method="DELETE"),
                                dict(platform="someone-else")])
def test_only_our_valid_cdrs_are_billed(cdr_example, kw) -> None:  # noqa: ANN001
    lookups, asked = _lookups({"12": EXAMPLE_TARIFF})
    states, outs = _run([_event(cdr_example, **kw)], lookups)
    assert outs == [] and asked == [] and all(v is None for v in states.values())


def test_text_that_is_not_json_is_reviewed_not_lost(cdr_example) -> None:  # noqa: ANN001
    _, outs = _run([_event(cdr_example, raw='{"id": "half')], _lookups()[0])
    assert _types(outs) == [("billing", "BillingReview")]
    assert outs[0][3]["payload"] == '{"id": "half' and outs[0][3]["reasons"][0]["code"] == "MALFORMED"


def test_our_fee_is_charged_on_top_and_stays_balanced(cdr_example) -> None:  # noqa: ANN001
    pol = Policy(platform_id=PLATFORM, fee=RoamingFee(fixed=Decimal("0.50"), vat_rate=Decimal("21")))
    _, outs = _run([_event(cdr_example)], _lookups({"12": EXAMPLE_TARIFF})[0], pol)
    assert _balanced(outs[-1][3]["entries"]) == Decimal("4.40") + Decimal("0.50") + Decimal("0.11")


TANDEM_CDRS = sorted(str(p.relative_to(TANDEMDRIVE)) for p in TANDEMDRIVE.glob("*/cdr*.json")
                     if (p.parent / "tariff.json").exists())


@pytest.mark.parametrize("path", TANDEM_CDRS)
def test_tandemdrive_vectors_post_the_partners_total_balanced(path: str) -> None:
    """Independent CDR vectors (tariff embedded, as a CPO sends it): each is posted at the partner's total_cost,
    balanced, and reported only where our engine disagrees with the vector."""
    cdr = load(TANDEMDRIVE / path)
    tariff = load((TANDEMDRIVE / path).parent / "tariff.json")
    name = path.replace("/", "-")
    cdr.setdefault("country_code", "NL")
    cdr.setdefault("party_id", "TDR")
    cdr.setdefault("id", name)
    cdr.setdefault("cdr_token", {"uid": "U1", "type": "RFID", "contract_id": "C1", "country_code": "NL",
                                 "party_id": "CVS"})
    cdr["tariffs"] = cdr.get("tariffs") or [tariff]  # the vectors ship an empty list: embed the tariff
    tid = tariff.get("id")
    _, outs = _run([_event(cdr)], _lookups({tid: tariff} if isinstance(tid, str) else {})[0])
    kinds = [t for _, _, t, _ in outs]
    assert kinds[0] == "CdrPriced" and kinds[-1] == "LedgerPostingSet"
    total = cdr["total_cost"]
    gross = Decimal(str(total.get("incl_vat", total["excl_vat"]))).quantize(Decimal("0.01"))
    assert _balanced(outs[-1][3]["entries"]) == gross  # the partner's figure, whatever our re-pricing says
    # the one vector that disagrees with the OCPI text (min_price, see shared/data/README.md) is reported;
    # every other vector re-prices to its own totals
    assert ("BillingDiscrepancy" in kinds) == (path == "025kwh_min_price/cdr2_less_than_2kWh.json")
