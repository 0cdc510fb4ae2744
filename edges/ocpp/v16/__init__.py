"""OCPP 1.6-J (+ the 1.6 security extension): its error-code spellings, schema validation and handlers."""

from edges.ocpp.framing import V16_DIALECT

SUBPROTOCOL = "ocpp1.6"
FORMATION = "FormationViolation"  # 1.6 spelling (2.0.1: FormatViolation)
OCCURRENCE = "OccurenceConstraintViolation"  # 1.6 spelling (sic)
DIALECT = V16_DIALECT
