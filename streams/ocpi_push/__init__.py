"""Our own objects as OCPI pushes (CPO role): `stations`, `sessions`, `billing` -> `ocpi.outbound`
(OcpiPushRequested).  The pure fold is `fold.py`, the stateful processor `processor.py`; the calls themselves are
made by edges/ocpi/push_worker.py."""
