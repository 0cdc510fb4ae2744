-- What the OCPP edge answers synchronously from Postgres (DESIGN.md §1), owned by the edge's needs, written by
-- projections only.
--
-- id_tokens: every identifier a charger may present (RFID uid, eMAID, key code ...), written by the identity
-- projection.  The edge answers Authorize / StartTransaction (1.6 idTagInfo) and Authorize / TransactionEvent
-- (2.0.1 idTokenInfo) from it: an unknown uid is never accepted, a passed valid_until answers Expired.
CREATE TABLE id_tokens (
    uid          text PRIMARY KEY,
    type         text,            -- 2.0.1 IdTokenEnumType (ISO14443, eMAID, ...); NULL: any type
    contract_id  text,
    account_id   text,
    status       text NOT NULL CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
    valid_until  timestamptz NULL,
    group_id     text NULL,       -- 1.6 parentIdTag / 2.0.1 groupIdToken
    updated_at   timestamptz NOT NULL
);

-- OCPP 1.6 StartTransaction.conf transactionId: unique across every edge instance, never reused, and within
-- the int32 range 1.6 chargers store.  Gaps (a number drawn for a frame the log refused) are harmless.
CREATE SEQUENCE ocpp_transaction_ids AS integer START WITH 1 MINVALUE 1 MAXVALUE 2147483647 NO CYCLE;

-- The registration decisions the handshake and BootNotification need (proposed StationRegistered fields
-- `revoked` and `registration_status`; the stations projection fills them, defaults keep today's behaviour):
-- a revoked charger is refused at the handshake; a Pending/Rejected one is answered so at boot.
ALTER TABLE charge_point_credentials
    ADD COLUMN revoked boolean NOT NULL DEFAULT false,
    ADD COLUMN registration_status text NOT NULL DEFAULT 'Accepted'
        CHECK (registration_status IN ('Accepted', 'Pending', 'Rejected'));
