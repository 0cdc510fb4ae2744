"""Online-learned forecasts (issue 7): session energy/duration, occupancy, charger health.

Pure: no Kafka, database or network.  Every model is fed events in time order (`learn_one` only with labels that
are known at that time) and can be checkpointed to bytes with the log offsets it has consumed.  The stream wiring
(`streams/app.py`) comes later and only has to call these.

Conventions, used throughout (see each module for details):
- Time: tz-aware datetimes; calendar features (hour, weekday, day boundaries) are taken in the SITE's local time
  (America/Los_Angeles for ACN and Palo Alto, Europe/Oslo for Trondheim), because drivers live by the local clock.
- A session's labels (energy, duration) become known at unplug; nothing about a session is learned earlier.
- Occupancy: a connector is "occupied" from plug-in to unplug (a parked, fully charged car still occupies it).
"""
