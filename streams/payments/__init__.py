"""The payments worker: a pre-authorisation hold at a session's start, its capture at the priced CDR, release of the
rest, through a payment provider (ledger/billing/payments.py).  See fold.py for the rules and processor.py for
how state is keyed across `sessions` and `billing`."""
