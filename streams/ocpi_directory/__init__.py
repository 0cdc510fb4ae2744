"""Roamed Locations and Sessions from `ocpi.inbound` into the station directory (`stations`) and our drivers'
sessions (`sessions`): the pure fold is in `fold.py`, the stateful processor in `processor.py`."""
