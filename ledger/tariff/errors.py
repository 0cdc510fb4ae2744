"""Exceptions of the tariff engine.

Every refusal is a subclass of :class:`TariffEngineError` (itself a ``ValueError``) so a caller
can catch the family at a boundary and dead-letter the input with the message; nothing is
half-priced when one is raised (the engine has no state to leave half-written).  Messages
name the offending field (``elements[2].price_components[0].step_size``) so a partner's
broken tariff can be explained back to them.
"""

from __future__ import annotations


class TariffEngineError(ValueError):
    """Base class: the input cannot be priced as given."""


class InvalidTariffError(TariffEngineError):
    """The tariff object breaks OCPI 2.2.1 (bad field, bad value, impossible restriction)."""


class UnknownCurrencyError(InvalidTariffError):
    """The currency is not an ISO 4217 code this engine knows the minor units of."""


class InvalidSessionError(TariffEngineError):
    """The charging periods / meter samples cannot describe a real session
    (negative energy, periods out of order, end before start, ...)."""


class TariffNotApplicableError(TariffEngineError):
    """The tariff was not valid when the session started (``start_date_time``/``end_date_time``),
    or the session does not belong to this tariff (currency or ``tariff_id`` mismatch)."""
