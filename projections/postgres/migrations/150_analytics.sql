-- Admin analytics (edges/api/analytics.py) aggregate the sessions and cdrs projections over a time window: an
-- index on the session start serves windows across all stations (per station, sessions_by_charger serves).
CREATE INDEX sessions_by_start ON sessions (started_at);
