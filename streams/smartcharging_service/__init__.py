"""The smart-charging service: site inputs and session events in, charging schedules and OCPP charging profiles out.

`decide.py` is the pure decision layer (which site an event concerns, whether it calls for a re-plan, the planning
instance, the profiles); `processor.py` runs it on the log with its state in Postgres.  The optimiser itself is
`streams/smartcharging/` (called through its public API only).
"""
