"""OCPP 2.0.1: its error-code spellings, schema validation and handlers (the same shape as `v16`)."""

from edges.ocpp.framing import V201_DIALECT

SUBPROTOCOL = "ocpp2.0.1"
FORMATION = "FormatViolation"  # 2.0.1 spelling (1.6: FormationViolation)
OCCURRENCE = "OccurrenceConstraintViolation"  # 2.0.1 spelling (1.6: OccurenceConstraintViolation)
DIALECT = V201_DIALECT
