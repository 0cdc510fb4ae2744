-- Plug & Charge as the `pnc` topic describes it (projections/postgres/pnc.py): enrolled cars, contract
-- certificates with their status, station certificates and trusted roots.  Every timestamp comes from the
-- events, never from now(): a replay into empty tables gives identical rows.  The OCPP edge answers
-- Get15118EVCertificate / GetCertificateStatus / Authorize from these tables, the API answers OCSP and the CRL
-- (edges/pnc/service.py); neither writes them.

-- which eMAID a car (its OEM provisioning certificate id) gets at CertificateInstallation
CREATE TABLE pnc_enrolments (
    pcid          text PRIMARY KEY,
    emaid         text NOT NULL,
    account_id    text NOT NULL,
    enrolled_at   timestamptz NOT NULL,
    event_id      text NOT NULL
);
CREATE INDEX pnc_enrolments_by_emaid ON pnc_enrolments (emaid);

-- every contract certificate we issued; status 'good' until a revocation (first revocation wins)
CREATE TABLE contract_certificates (
    issuer_key_id     text NOT NULL,
    serial_number     text NOT NULL,          -- lower-case hex
    emaid             text NOT NULL,
    account_id        text,
    issuer_name_hash  text NOT NULL,          -- SHA-256, hex (OCPP OCSPRequestDataType)
    issuer_key_hash   text NOT NULL,
    not_before        timestamptz NOT NULL,
    not_after         timestamptz NOT NULL,
    action            text NOT NULL,
    pcid              text,
    station_id        text,
    replaces_serial   text,
    certificate_pem   text NOT NULL,
    issued_at         timestamptz NOT NULL,
    issued_event_id   text NOT NULL,
    status            text NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked')),
    revoked_at        timestamptz,
    revocation_cause  text,
    revoked_by        text,
    PRIMARY KEY (issuer_key_id, serial_number)
);
CREATE INDEX contract_certificates_by_emaid ON contract_certificates (emaid);
CREATE INDEX contract_certificates_by_account ON contract_certificates (account_id);
CREATE INDEX contract_certificates_by_hashes ON contract_certificates (issuer_name_hash, issuer_key_hash, serial_number);

CREATE TABLE station_certificates (
    issuer_key_id     text NOT NULL,
    serial_number     text NOT NULL,
    station_id        text NOT NULL,
    certificate_type  text NOT NULL,
    not_before        timestamptz NOT NULL,
    not_after         timestamptz NOT NULL,
    certificate_chain_pem text NOT NULL,
    signed_at         timestamptz NOT NULL,
    event_id          text NOT NULL,
    PRIMARY KEY (issuer_key_id, serial_number)
);
CREATE INDEX station_certificates_by_station ON station_certificates (station_id);

CREATE TABLE pnc_trusted_roots (
    fingerprint_sha256 text PRIMARY KEY,
    kind               text NOT NULL,
    subject            text NOT NULL,
    not_after          timestamptz NOT NULL,
    certificate_pem    text NOT NULL,
    added_at           timestamptz NOT NULL,
    added_by           text NOT NULL
);
