-- The immutable double-entry ledger (ledger/store.py writes it; ledger/engine.py decides what it writes).
--
-- Everything here is derived from the `ledger` topic and rebuilt from it byte for byte (`cv replay ledger`).
-- Insert-only: posting sets, postings, seals and refusals are never updated or deleted (a trigger refuses it, even
-- for the owner; a correction is a reversing posting set).  Only two tables change in place, and both are caches
-- that `cv ledger verify` recomputes from the postings: account balances and chain heads.
-- Money is integer minor units of the row's currency (ledger/money.py); times come from events, never now().

-- One row per posting set.  (ledger_key, source_event_id) is the idempotency key: a redelivered set is a no-op.
CREATE TABLE ledger_posting_sets (
    ledger_key       text NOT NULL,
    source_event_id  text NOT NULL,
    event_id         text NOT NULL,           -- the LedgerPostingSet event that carried it
    causation_id     text,                    -- the event that caused it (e.g. the priced CDR)
    ledger_partition text NOT NULL,           -- the log partition it came from, e.g. 'ledger:3' (its chain)
    log_offset       bigint NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('POSTING', 'HOLD', 'POST_HOLD', 'VOID_HOLD', 'REVERSAL')),
    occurred_at      timestamptz NOT NULL,
    session_id       text,
    hold_id          text,
    reverses         text,
    memo             text,
    first_seq        bigint NOT NULL,         -- its postings are seqs first_seq .. first_seq + entry_count - 1
    entry_count      integer NOT NULL CHECK (entry_count > 0),
    content_hash     bytea NOT NULL,
    PRIMARY KEY (ledger_key, source_event_id)
);
-- a hold id is used once per key, resolved (posted or voided) at most once, and a set is reversed at most once:
-- the database itself refuses a second one, whatever the code above it does
CREATE UNIQUE INDEX ledger_one_hold ON ledger_posting_sets (ledger_key, hold_id) WHERE kind = 'HOLD';
CREATE UNIQUE INDEX ledger_hold_resolves_once ON ledger_posting_sets (ledger_key, hold_id)
    WHERE kind IN ('POST_HOLD', 'VOID_HOLD');
CREATE UNIQUE INDEX ledger_reversed_once ON ledger_posting_sets (ledger_key, reverses) WHERE kind = 'REVERSAL';
CREATE INDEX ledger_sets_session ON ledger_posting_sets (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX ledger_sets_event ON ledger_posting_sets (event_id);
-- where a set's postings are: verify merges postings and sets per partition in this order
CREATE INDEX ledger_sets_position ON ledger_posting_sets (ledger_partition, first_seq);

-- One row per entry, chained per partition: hash = SHA-256(previous hash || canonical(row)) (ledger/chain.py).
CREATE TABLE ledger_postings (
    ledger_partition text NOT NULL,
    seq              bigint NOT NULL CHECK (seq > 0),
    ledger_key       text NOT NULL,
    source_event_id  text NOT NULL,
    entry_index      integer NOT NULL CHECK (entry_index >= 0),
    kind             text NOT NULL,           -- the set's kind, here too so balance queries need no join
    occurred_at      timestamptz NOT NULL,    -- the set's time, likewise
    account          text NOT NULL,
    currency         text NOT NULL,
    direction        "char" NOT NULL CHECK (direction IN ('D', 'C')),
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    hash             bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (ledger_partition, seq)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account, currency, occurred_at);

-- Balances per (account, currency), TigerBeetle's four totals; kind and flags follow from the name
-- (ledger/accounts.py) and are copied here for SQL readers.
CREATE TABLE ledger_accounts (
    account          text NOT NULL,
    currency         text NOT NULL,
    kind             text NOT NULL,
    flags            integer NOT NULL,
    debits_posted    numeric(38, 0) NOT NULL DEFAULT 0,
    credits_posted   numeric(38, 0) NOT NULL DEFAULT 0,
    debits_pending   numeric(38, 0) NOT NULL DEFAULT 0,
    credits_pending  numeric(38, 0) NOT NULL DEFAULT 0,
    opened_at        timestamptz NOT NULL,
    PRIMARY KEY (account, currency),
    CHECK (flags & 1 = 0 OR debits_posted + debits_pending <= credits_posted),
    CHECK (flags & 2 = 0 OR credits_posted + credits_pending <= debits_posted)
);

-- The last seq and hash of every partition's chain.
CREATE TABLE ledger_chain_heads (
    ledger_partition text PRIMARY KEY,
    seq              bigint NOT NULL,
    hash             bytea NOT NULL
);

-- Seals as applied from LedgerSealed events, numbered in log order; each follows the previous root.
CREATE TABLE ledger_seals (
    seal_no          bigint PRIMARY KEY,
    event_id         text NOT NULL UNIQUE,
    ledger_partition text NOT NULL,
    log_offset       bigint NOT NULL,
    sealed_at        timestamptz NOT NULL,
    root             bytea NOT NULL,
    previous_root    bytea
);
CREATE TABLE ledger_seal_heads (
    seal_no          bigint NOT NULL REFERENCES ledger_seals,
    ledger_partition text NOT NULL,
    seq              bigint NOT NULL,
    head_hash        bytea NOT NULL,
    postings_root    bytea NOT NULL,
    PRIMARY KEY (seal_no, ledger_partition)
);

-- Events the ledger refused, with the reason (for the review queue and auditors); never posted.
CREATE TABLE ledger_rejections (
    event_id         text PRIMARY KEY,
    event_type       text NOT NULL,
    ledger_key       text,
    source_event_id  text,
    ledger_partition text NOT NULL,
    log_offset       bigint NOT NULL,
    occurred_at      timestamptz,
    reason           text NOT NULL,
    detail           text NOT NULL
);

-- Holds and how they resolved (a view: the facts are posting sets).
CREATE VIEW ledger_holds AS
SELECT h.ledger_key, h.hold_id, h.source_event_id, h.session_id, h.occurred_at AS held_at,
       CASE r.kind WHEN 'POST_HOLD' THEN 'POSTED' WHEN 'VOID_HOLD' THEN 'VOIDED' ELSE 'PENDING' END AS status,
       r.source_event_id AS resolved_by, r.occurred_at AS resolved_at
FROM ledger_posting_sets h
LEFT JOIN ledger_posting_sets r
       ON r.ledger_key = h.ledger_key AND r.hold_id = h.hold_id AND r.kind IN ('POST_HOLD', 'VOID_HOLD')
WHERE h.kind = 'HOLD';

-- Immutability.  UPDATE and DELETE are refused on every insert-only table for every role, the owner included;
-- TRUNCATE only inside a rebuild that says so (`SET LOCAL chargeverse.ledger_rebuild = 'on'`, what
-- LedgerStore.reset does).  Someone who can ALTER TABLE ... DISABLE TRIGGER can still edit rows: that is what
-- the hash chains and the seals on the log are for (`cv ledger verify`).
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: % on % refused; post a reversing posting set instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE FUNCTION ledger_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('chargeverse.ledger_rebuild', true), '') <> 'on' THEN
        RAISE EXCEPTION 'ledger tables are only truncated by a rebuild from the log (cv replay ledger)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_posting_sets_immutable BEFORE UPDATE OR DELETE ON ledger_posting_sets
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_immutable BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seals_immutable BEFORE UPDATE OR DELETE ON ledger_seals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seal_heads_immutable BEFORE UPDATE OR DELETE ON ledger_seal_heads
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_rejections_immutable BEFORE UPDATE OR DELETE ON ledger_rejections
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_sets_no_truncate BEFORE TRUNCATE ON ledger_posting_sets
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER ledger_seals_no_truncate BEFORE TRUNCATE ON ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER ledger_seal_heads_no_truncate BEFORE TRUNCATE ON ledger_seal_heads
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();
CREATE TRIGGER ledger_rejections_no_truncate BEFORE TRUNCATE ON ledger_rejections
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_truncate();

-- Auditors read, never write: the NOLOGIN role cv_ledger_auditor has SELECT on the ledger and nothing else, and
-- every transaction it starts is read-only.  Give a person audit access with
--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE cv_ledger_auditor;
-- (ledger/audit.py also switches to this role for its queries.)  Creating a role needs CREATEROLE; where the
-- migrating user lacks it, the grants are skipped with a notice and read-only transactions still apply.
DO $$
BEGIN
    BEGIN
        CREATE ROLE cv_ledger_auditor NOLOGIN;
    EXCEPTION WHEN duplicate_object THEN NULL;
    END;
    ALTER ROLE cv_ledger_auditor SET default_transaction_read_only = on;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO cv_ledger_auditor', current_schema());
    EXECUTE 'GRANT SELECT ON ledger_posting_sets, ledger_postings, ledger_accounts, ledger_chain_heads, '
            'ledger_seals, ledger_seal_heads, ledger_rejections, ledger_holds TO cv_ledger_auditor';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cv_ledger_auditor not set up (needs CREATEROLE): %', SQLERRM;
END $$;
