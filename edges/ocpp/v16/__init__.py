"""OCPP 1.6-J: its error-code spellings, schema validation and handlers."""

SUBPROTOCOL = "ocpp1.6"
FORMATION = "FormationViolation"  # 1.6 spelling (2.0.1: FormatViolation)
OCCURRENCE = "OccurenceConstraintViolation"  # 1.6 spelling (sic)
