"""Plug & Charge PKI core (ISO 15118-2 mobility-operator role), pure and I/O-free.

Why a separate, pure package: everything here is deterministic crypto and data
transformation (eMAIDs, certificate issuance, contract-key encryption, OCSP/CRL
building, CSR signing).  Keeping it free of Kafka, databases and HTTP lets the
OCPP 2.0.1 / OCPI / event wiring call it from any process, lets tests verify it
against OpenSSL, and lets a real HSM replace the software key holder.

Modules:
    errors        typed rejections with ISO 15118-2 / OCPP reason codes
    emaid         EMA-ID parsing, normalisation, check digit, generation
    profiles      the certificate profiles of the ISO 15118-2 test PKI (*.cnf)
    signer        HSM-shaped signer protocol + encrypted-at-rest software signer
    der           the few DER constructs needed to let an external signer sign
    ca            CA hierarchy building and certificate issuance
    chain         certificate chain verification with typed reasons
    provisioning  CertificateInstallation / CertificateUpdate crypto
    revocation    revocation registry, OCSP responses, CRLs, GetCertificateStatus
    station_certs SignCertificate CSR checking and signing (security profile 3)
"""
