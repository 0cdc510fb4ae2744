-- Seals waiting for the chains they name to reach the named seqs (a rebuild can read a seal's partition before
-- the partitions it seals).  Judged in (ledger_partition, log_offset) order as soon as every named chain has
-- caught up, then deleted: accepted ones move to ledger_seals, refused ones to ledger_rejections.  Not part of
-- the immutable record, so no triggers; after a complete rebuild it is empty.
CREATE TABLE ledger_pending_seals (
    event_id         text PRIMARY KEY,
    ledger_partition text NOT NULL,
    log_offset       bigint NOT NULL,
    sealed_at        timestamptz NOT NULL,
    root             bytea NOT NULL,
    previous_root    bytea,
    heads            jsonb NOT NULL,  -- [{ledger_partition, seq, head_hash, postings_root}] with hex hashes
    UNIQUE (ledger_partition, log_offset)
);

DO $$
BEGIN
    EXECUTE 'GRANT SELECT ON ledger_pending_seals TO cv_ledger_auditor';
EXCEPTION WHEN undefined_object OR insufficient_privilege THEN
    RAISE NOTICE 'cv_ledger_auditor cannot read ledger_pending_seals: %', SQLERRM;
END $$;
