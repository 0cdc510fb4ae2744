"""Postgres projection of the `community` topic: station reviews (with ratings) and photos, and their moderation.

Guarantees (besides those of projections/base.py: rows and offsets in one transaction, rows depend only on events):
- **One station, one partition.**  Every community event is keyed by its station id, so a station's reviews and
  photos change in the order they were written, live and on replay, and handlers touch only that station's rows.
- **One review per driver per station**: StationReviewPosted upserts (station, author); the new text and rating
  replace the old ones and clear an earlier moderation (new content deserves a new look).
- **Removal by the author deletes; moderation hides**: a moderated removal keeps the row (hidden, with who and
  why) so an operator can see what was hidden; hidden rows never count in ratings or listings.
- **Photos are rows pointing at content-addressed bytes** (sha256 in the document store): the projection never
  touches the bytes, so a rebuild is a pure function of the log.  A removal of an unknown photo changes nothing.
- Values the API would never publish (a rating outside 1..5) are dropped, not stored: the table's CHECK would make
  the whole batch fail otherwise.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import psycopg

from projections.base import SourcedEvent
from projections.postgres.table_projection import TableProjection

_Handler = Callable[[psycopg.Cursor, dict[str, Any]], None]


def _review_posted(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if not 1 <= int(r["rating"]) <= 5:
        return
    cur.execute("INSERT INTO station_reviews (station_id, account_id, rating, text, posted_at, event_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (station_id, account_id) DO UPDATE SET "
                "rating = EXCLUDED.rating, text = EXCLUDED.text, posted_at = EXCLUDED.posted_at, "
                "event_id = EXCLUDED.event_id, hidden = false, hidden_by = NULL, hidden_reason = NULL",
                (r["station_id"], r["account_id"], r["rating"], r["text"], r["occurred_at"], r["event_id"]))


def _review_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if r["moderated"]:
        cur.execute("UPDATE station_reviews SET hidden = true, hidden_by = %s, hidden_reason = %s "
                    "WHERE station_id = %s AND account_id = %s",
                    (r["removed_by"], r["reason"], r["station_id"], r["account_id"]))
    else:
        cur.execute("DELETE FROM station_reviews WHERE station_id = %s AND account_id = %s",
                    (r["station_id"], r["account_id"]))


def _photo_added(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    cur.execute("INSERT INTO station_photos (photo_id, station_id, account_id, sha256, size_bytes, content_type, "
                "added_at, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (photo_id) DO NOTHING",
                (r["photo_id"], r["station_id"], r["account_id"], r["sha256"], r["size_bytes"], r["content_type"],
                 r["occurred_at"], r["event_id"]))


def _photo_removed(cur: psycopg.Cursor, r: dict[str, Any]) -> None:
    if r["moderated"]:
        cur.execute("UPDATE station_photos SET hidden = true, hidden_by = %s, hidden_reason = %s "
                    "WHERE photo_id = %s AND station_id = %s",
                    (r["removed_by"], r["reason"], r["photo_id"], r["station_id"]))
    else:
        cur.execute("DELETE FROM station_photos WHERE photo_id = %s AND station_id = %s",
                    (r["photo_id"], r["station_id"]))


HANDLERS: dict[str, _Handler] = {
    "StationReviewPosted": _review_posted,
    "StationReviewRemoved": _review_removed,
    "StationPhotoAdded": _photo_added,
    "StationPhotoRemoved": _photo_removed,
}


class CommunityProjection(TableProjection):
    name = "pg.community"
    topics = ("community",)
    tables = (("station_reviews", "station_id, account_id"), ("station_photos", "photo_id"))

    def write(self, cur: psycopg.Cursor[Any], events: Sequence[SourcedEvent]) -> None:
        for e in events:
            handler = HANDLERS.get(e.type)
            if handler is not None:
                handler(cur, e.record)
