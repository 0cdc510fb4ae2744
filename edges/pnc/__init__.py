"""Plug & Charge wiring: CA material on disk, the PnC service (projections in, events out), shared by the OCPP
edge, the API (OCSP, CRL, admin) and `cv pnc`.  The crypto itself is pure, in chargeverse/pnc/."""
