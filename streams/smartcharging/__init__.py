"""Smart charging: a pure (no I/O besides file loaders) site model, lexicographic pyomo/HiGHS optimiser,
online re-planner, baseline policies, ACN data loader and OCPP charging-profile builders.

Stream and OCPP wiring (consuming events, publishing on ``ocpp.commands``) lives elsewhere and calls
into this package; nothing here talks to Kafka, a database or the network.
"""

from .baselines import BASELINES, edf, llf, round_robin, run_baseline, uncontrolled
from .model import EV, InvalidSiteError, Issue, LimitNode, Site, validate
from .online import OnlinePlanner, replay
from .optimiser import CRITERIA, ChargingModel, OptimiserConfig, optimise
from .profiles import set_charging_profile_v201, tx_profile_v16
from .schedule import Schedule, violations

__all__ = [
    "BASELINES", "CRITERIA", "EV", "ChargingModel", "InvalidSiteError", "Issue", "LimitNode", "OnlinePlanner",
    "OptimiserConfig", "Schedule", "Site", "edf", "llf", "optimise", "replay", "round_robin", "run_baseline",
    "set_charging_profile_v201", "tx_profile_v16", "uncontrolled", "validate", "violations",
]
