"""chargeverse: the shared kernel (settings, topic catalogue, event contracts, Kafka plumbing, local stack).

Edges, stream processors and projections import from here; nothing here imports from them.
"""

from pathlib import Path

#: The repository root: schemas/avro/ and projections' migrations are read relative to it.
ROOT = Path(__file__).resolve().parent.parent
