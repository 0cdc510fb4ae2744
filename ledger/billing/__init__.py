"""Billing: the domain between a priced CDR and the ledger.

Pure modules (no I/O; the same input always gives the same output, so replays are exact):
- `money`: Decimal amounts, ISO 4217 minor units, the one rounding rule (ROUND_HALF_UP at the money border).
- `cdr_checks`: is a CDR fit to post?  `check_cdr` -> typed `Problem`s (empty = ok); `read_totals` -> `CdrTotals`.
- `discrepancy`: a roamed session's partner CDR against our re-pricing -> `DiscrepancyDecision`.
- `account_names` / `postings_plan`: which ledger accounts move for each billing fact -> balanced `PostingPlan`s
  that map one-to-one onto `LedgerPostingSet` events.
- `invoices`: monthly driver/fleet invoices, the fleet CSV report, the energy-bill export.
- `events`: payload dicts for the billing Avro events.
The one adapter: `payments` (the `PaymentProvider` protocol, `LocalProvider`, `StripeCompatibleProvider` over
httpx).

Flow the billing processor follows (see the modules for the details):
  CDR -> check_cdr -> problems?  -> BillingReview (payload verbatim; nothing posted)
                   -> ok         -> CdrPriced; own/roamed session plan -> LedgerPostingSet
  roamed: compare_totals(partner, our re-pricing) -> not ok -> BillingDiscrepancy (posting goes ahead)
  session start: provider.authorize_hold -> PaymentEvent HOLD_AUTHORISED + hold_plan
  CDR: settle_against_hold -> provider.capture (+ direct charge of any excess) -> PaymentEvent + capture_plan
"""
