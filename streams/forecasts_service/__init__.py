"""The forecasts service: station status and session events in, occupancy forecasts, session forecasts and charger
fault suspicions out.  `decide.py` is pure; `processor.py` runs it on the log with checkpointed models.  The models
themselves are `streams/forecasting/` (called through their public API only).
"""
