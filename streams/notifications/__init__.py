"""Notifications: the processor that decides what a driver should hear about (fold.py, processor.py), the senders
that deliver (senders.py) and the edge worker that runs them (worker.py)."""
