"""Community content of stations: ratings (1-5) with an optional review text, and photos; the author's own
removal and admin moderation (hide).

Event-sourced like every write: the API checks the request, publishes one event on `community` (key: station id,
so a station's content changes in one order) and waits, bounded, for `pg.community` to apply it
(chargeverse/consistency.py); the answer is then read from the projection, or it is 202 when the wait runs out.

Why photo bytes are stored content-addressed by the API, before the event (not carried by the event, not written
by a projection):
- An event must stay small (the broker's default message limit is 1 MB, photos may be several) and the log is
  kept forever; bytes on the log would make every replay of `community` re-read megabytes of pixels.
- The bytes are immutable and named by their sha256, so writing them is idempotent and is not a projection: it
  holds no state derived from the order of events and never needs rebuilding.  The event (StationPhotoAdded)
  carries the hash, size and type; the projection only records rows pointing at the hash.
- Bytes first, event second: an event can never name bytes that are missing.  A crash in between leaves an orphan
  blob nobody points at (harmless; a sweep can delete blobs no row names).  The same bytes uploaded twice are
  stored once.
Store: Mongo (the document store, DESIGN.md §4), collection `photo_blobs`, `_id` = hex sha256.

Input rules (pure functions below, unit-tested): review text is plain text returned HTML-escaped (tags removed,
`& < > " '` escaped), control and bidi-override characters removed, whitespace tidied, at most `MAX_TEXT` characters
in; a photo is JPEG, PNG or WebP as declared by Content-Type AND found in the bytes' signature (415 otherwise), at
most `community_photo_max_bytes` (413 otherwise, checked before the body is read when Content-Length says so, and
while reading when it does not).

Who may call: everyone with a reading role reads; drivers and fleet managers (the people who charge) write and
remove their own content; admins hide anyone's.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import unicodedata
import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from chargeverse.consistency import wait_applied
from chargeverse.events import envelope
from chargeverse.settings import get_settings
from chargeverse.topics import COMMUNITY
from edges.api.auth import auth_config, require
from edges.api.runtime import SOURCE, GuardedRoute, correlation_id, producer

router = APIRouter(tags=["community"], route_class=GuardedRoute)
PROJECTION = "pg.community"
READERS = ("driver", "fleet_manager", "operator", "admin")
AUTHORS = ("driver", "fleet_manager")
MAX_TEXT = 2000
MAX_REASON = 500
STATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@*+#-]{0,63}$"
PHOTO_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,79}$"
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")

StationId = Path(pattern=STATION_ID, max_length=64, description="station id")
PhotoId = Path(pattern=PHOTO_ID, description="photo id (uuid)")


# ---- pure rules ----------------------------------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]*>?")
#: explicit direction controls (Trojan-Source style reordering) and other invisible format characters
_INVISIBLE = {"\u200b", "\u200e", "\u200f", "\u2060", "\ufeff", *map(chr, range(0x202A, 0x202F)),
              *map(chr, range(0x2066, 0x206A))}


def sanitise_text(raw: str | None, max_len: int = MAX_TEXT) -> str | None:
    """Plain, HTML-safe text from what a user typed, or None when nothing is left.

    NFC-normalised; HTML tags removed and the rest escaped (so the text can be put into a page as it is); control
    characters (except line breaks), bidi overrides and zero-width characters removed; tabs become spaces, runs of
    spaces collapse, at most two line breaks in a row, no leading/trailing whitespace.  Raises ValueError when the
    input is longer than `max_len` characters (checked on the input, so a rejection never depends on escaping)."""
    if raw is None:
        return None
    if len(raw) > max_len:
        raise ValueError(f"text is longer than {max_len} characters")
    text = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = "".join(ch for ch in text if ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in _INVISIBLE))
    text = _TAG.sub("", text)
    text = re.sub(r"[ \u00a0]{2,}", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return html.escape(text, quote=True) or None


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes' signature says (image/jpeg, image/png, image/webp), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class PhotoRejected(Exception):
    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code, self.reason = status_code, reason


def declared_type(content_type: str | None) -> str:
    """The declared media type without parameters; PhotoRejected(415) unless it is one we store."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in PHOTO_TYPES:
        raise PhotoRejected(415, f"photos must be sent as {', '.join(PHOTO_TYPES)} (got {media or 'none'!r})")
    return media


def check_photo(data: bytes, content_type: str | None, max_bytes: int) -> str:
    """The photo's media type if the bytes are acceptable, else PhotoRejected with 413 or 415 and why."""
    declared = declared_type(content_type)
    if len(data) > max_bytes:
        raise PhotoRejected(413, f"a photo may have at most {max_bytes} bytes")
    if not data:
        raise PhotoRejected(415, "the photo is empty")
    found = sniff_image(data)
    if found is None:
        raise PhotoRejected(415, "the bytes are not a JPEG, PNG or WebP image")
    if found != declared:
        raise PhotoRejected(415, f"declared {declared} but the bytes are {found}")
    return found


def rating_summary(total: int, count: int) -> tuple[Decimal | None, int]:
    """(average to one decimal, rounded half up; count) of visible ratings summing to `total`."""
    if count <= 0:
        return None, 0
    return (Decimal(total) / Decimal(count)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP), count


# ---- models --------------------------------------------------------------------------------------------------------
class ReviewIn(BaseModel):
    rating: int = Field(..., ge=1, le=5, description="stars, 1 to 5")
    text: str | None = Field(None, max_length=MAX_TEXT, description="optional review; returned HTML-escaped")

    @field_validator("text")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return sanitise_text(v)


class Moderation(BaseModel):
    reason: str | None = Field(None, max_length=MAX_REASON)

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str | None) -> str | None:
        return sanitise_text(v, MAX_REASON)


class RatingSummary(BaseModel):
    average: float | None = Field(None, description="mean of visible ratings, one decimal; null when none")
    count: int


class Review(BaseModel):
    station_id: str
    rating: int
    text: str | None = Field(None, description="HTML-escaped plain text")
    posted_at: datetime
    mine: bool = Field(False, description="written by the caller")
    hidden: bool = False


class ReviewPage(BaseModel):
    summary: RatingSummary
    items: list[Review]
    limit: int
    offset: int


class Photo(BaseModel):
    photo_id: str
    station_id: str
    content_type: str
    size_bytes: int
    sha256: str
    added_at: datetime
    url: str
    mine: bool = False


class Pending(BaseModel):
    status: str = "pending"
    detail: str


# ---- helpers -------------------------------------------------------------------------------------------------------
async def _rows(request: Request, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def _station_exists(request: Request, station_id: str) -> None:
    if not await _rows(request, "SELECT 1 FROM stations WHERE station_id = %s", (station_id,)):
        raise HTTPException(404, f"no station {station_id!r}")


async def _publish(request: Request, station_id: str, event_type: str, payload: dict[str, Any]) -> bool:
    """Publish one community event; True once the projection has applied it (False: the bounded wait ran out)."""
    rec = envelope(source=SOURCE, correlation_id=correlation_id(request))
    rec.update(payload)
    delivered = await producer(request).publish(COMMUNITY.name, station_id, event_type, rec)
    return await wait_applied(request.app.state.pg, PROJECTION, delivered,
                              timeout=auth_config(request).write_wait_seconds)


def _pending(what: str) -> JSONResponse:
    return JSONResponse({"status": "pending", "detail": f"{what} is on the log and will show shortly"},
                        status_code=202, headers={"Retry-After": "1"})


async def summary(request: Request, station_id: str) -> RatingSummary:
    """Average and count of the visible ratings of a station (used by station detail too)."""
    rows = await _rows(request, "SELECT coalesce(sum(rating), 0), count(*) FROM station_reviews "
                                "WHERE station_id = %s AND NOT hidden", (station_id,))
    avg, count = rating_summary(int(rows[0][0]), int(rows[0][1]))
    return RatingSummary(average=None if avg is None else float(avg), count=count)


_PHOTO_COLUMNS = "photo_id, station_id, content_type, size_bytes, sha256, added_at, account_id"


def _photo(row: tuple[Any, ...], caller: str | None) -> Photo:
    return Photo(photo_id=row[0], station_id=row[1], content_type=row[2], size_bytes=row[3], sha256=row[4],
                 added_at=row[5], url=f"/api/stations/{row[1]}/photos/{row[0]}", mine=row[6] == caller)


async def photos_of(request: Request, station_id: str, caller: str | None, limit: int = 50,
                    offset: int = 0) -> list[Photo]:
    rows = await _rows(request, f"SELECT {_PHOTO_COLUMNS} FROM station_photos WHERE station_id = %s AND NOT hidden "
                                "ORDER BY added_at DESC, photo_id LIMIT %s OFFSET %s", (station_id, limit, offset))
    return [_photo(r, caller) for r in rows]


class BlobStore:
    """Photo bytes in Mongo, content-addressed (`_id` = hex sha256); writes are idempotent upserts."""

    def __init__(self, url: str, db: str) -> None:
        import pymongo

        self.client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
        self.col = self.client[db]["photo_blobs"]

    def put(self, sha256: str, data: bytes, content_type: str) -> None:
        from bson import Binary

        self.col.update_one({"_id": sha256}, {"$setOnInsert": {"data": Binary(data), "content_type": content_type,
                                                               "size": len(data)}}, upsert=True)

    def get(self, sha256: str) -> bytes | None:
        doc = self.col.find_one({"_id": sha256})
        return None if doc is None else bytes(doc["data"])

    def close(self) -> None:
        self.client.close()


def blob_store(request: Request) -> BlobStore:
    store = getattr(request.app.state, "photo_blobs", None)
    if store is None:
        s = get_settings()
        store = BlobStore(s.mongo_url.get_secret_value(), s.mongo_db)
        request.app.state.photo_blobs = store
    return store


def _max_photo_bytes(request: Request) -> int:
    return int(getattr(request.app.state, "photo_max_bytes", None) or get_settings().community_photo_max_bytes)


# ---- reviews -------------------------------------------------------------------------------------------------------
@router.get("/api/stations/{station_id}/reviews", response_model=ReviewPage,
            summary="Ratings summary and visible reviews of a station, newest first",
            responses={404: {"description": "no such station"}})
async def list_reviews(request: Request, station_id: str = StationId,
                       limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=100_000),
                       p: dict = Depends(require(*READERS))) -> ReviewPage:
    await _station_exists(request, station_id)
    rows = await _rows(request, "SELECT station_id, rating, text, posted_at, account_id FROM station_reviews "
                                "WHERE station_id = %s AND NOT hidden ORDER BY posted_at DESC, account_id "
                                "LIMIT %s OFFSET %s", (station_id, limit, offset))
    items = [Review(station_id=r[0], rating=r[1], text=r[2], posted_at=r[3], mine=r[4] == str(p["sub"]))
             for r in rows]
    return ReviewPage(summary=await summary(request, station_id), items=items, limit=limit, offset=offset)


@router.put("/api/stations/{station_id}/reviews/mine", response_model=Review,
            summary="Rate (1-5) and optionally review a station; replaces my earlier review of it",
            responses={202: {"model": Pending, "description": "accepted; shows shortly"},
                       404: {"description": "no such station"}})
async def put_review(body: ReviewIn, request: Request, station_id: str = StationId,
                     p: dict = Depends(require(*AUTHORS))) -> Any:
    await _station_exists(request, station_id)
    me = str(p["sub"])
    if not await _publish(request, station_id, "StationReviewPosted",
                          {"station_id": station_id, "account_id": me, "rating": body.rating, "text": body.text}):
        return _pending("the review")
    rows = await _rows(request, "SELECT station_id, rating, text, posted_at, hidden FROM station_reviews "
                                "WHERE station_id = %s AND account_id = %s", (station_id, me))
    if not rows:  # removed again by a concurrent request of the same driver
        return _pending("the review")
    r = rows[0]
    return Review(station_id=r[0], rating=r[1], text=r[2], posted_at=r[3], mine=True, hidden=r[4])


@router.delete("/api/stations/{station_id}/reviews/mine", status_code=204,
               summary="Delete my review of a station",
               responses={202: {"model": Pending, "description": "accepted"},
                          404: {"description": "no review of mine here"}})
async def delete_review(request: Request, station_id: str = StationId, p: dict = Depends(require(*AUTHORS))) -> Response:
    me = str(p["sub"])
    if not await _rows(request, "SELECT 1 FROM station_reviews WHERE station_id = %s AND account_id = %s",
                       (station_id, me)):
        raise HTTPException(404, "you have no review of this station")
    if not await _publish(request, station_id, "StationReviewRemoved",
                          {"station_id": station_id, "account_id": me, "removed_by": me, "moderated": False,
                           "reason": None}):
        return _pending("the removal")
    return Response(status_code=204)


@router.post("/api/admin/community/stations/{station_id}/reviews/{account_id}/hide", response_model=Review,
             summary="Moderation: hide a review (kept for audit, no longer shown or counted)",
             responses={202: {"model": Pending, "description": "accepted"}, 404: {"description": "no such review"}})
async def hide_review(body: Moderation, request: Request, station_id: str = StationId,
                      account_id: str = Path(pattern=ACCOUNT_ID, max_length=80),
                      p: dict = Depends(require("admin"))) -> Any:
    if not await _rows(request, "SELECT 1 FROM station_reviews WHERE station_id = %s AND account_id = %s",
                       (station_id, account_id)):
        raise HTTPException(404, "no such review")
    if not await _publish(request, station_id, "StationReviewRemoved",
                          {"station_id": station_id, "account_id": account_id, "removed_by": str(p["sub"]),
                           "moderated": True, "reason": body.reason}):
        return _pending("the moderation")
    r = (await _rows(request, "SELECT station_id, rating, text, posted_at, hidden FROM station_reviews "
                              "WHERE station_id = %s AND account_id = %s", (station_id, account_id)))
    if not r:
        raise HTTPException(404, "the review was deleted meanwhile")
    return Review(station_id=r[0][0], rating=r[0][1], text=r[0][2], posted_at=r[0][3], mine=False, hidden=r[0][4])


# ---- photos --------------------------------------------------------------------------------------------------------
_PHOTO_BODY = {"requestBody": {"required": True, "description": "the image bytes (at most the configured size)",
                               "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                           for t in PHOTO_TYPES}}}


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed `max_bytes`."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise PhotoRejected(413, f"a photo may have at most {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PhotoRejected(413, f"a photo may have at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/api/stations/{station_id}/photos", response_model=Photo, status_code=201,
             summary="Add a photo of a station (JPEG, PNG or WebP; the body is the image)",
             openapi_extra=_PHOTO_BODY,
             responses={202: {"model": Pending, "description": "accepted; shows shortly"},
                        404: {"description": "no such station"},
                        413: {"description": "the photo is larger than allowed"},
                        415: {"description": "not a JPEG, PNG or WebP image, or not the declared type"}})
async def add_photo(request: Request, station_id: str = StationId, p: dict = Depends(require(*AUTHORS))) -> Any:
    max_bytes = _max_photo_bytes(request)
    try:
        declared_type(request.headers.get("content-type"))
        data = await _read_capped(request, max_bytes)
        media = check_photo(data, request.headers.get("content-type"), max_bytes)
    except PhotoRejected as exc:
        raise HTTPException(exc.status_code, exc.reason) from None
    await _station_exists(request, station_id)
    digest = hashlib.sha256(data).hexdigest()
    await asyncio.to_thread(blob_store(request).put, digest, data, media)  # bytes first: see the docstring
    photo_id = str(uuid.uuid4())
    me = str(p["sub"])
    if not await _publish(request, station_id, "StationPhotoAdded",
                          {"station_id": station_id, "photo_id": photo_id, "account_id": me, "sha256": digest,
                           "size_bytes": len(data), "content_type": media}):
        return _pending("the photo")
    rows = await _rows(request, f"SELECT {_PHOTO_COLUMNS} FROM station_photos WHERE photo_id = %s", (photo_id,))
    if not rows:
        return _pending("the photo")
    return _photo(rows[0], me)


@router.get("/api/stations/{station_id}/photos", response_model=list[Photo],
            summary="Visible photos of a station, newest first", responses={404: {"description": "no such station"}})
async def list_photos(request: Request, station_id: str = StationId, limit: int = Query(50, ge=1, le=200),
                      offset: int = Query(0, ge=0, le=100_000), p: dict = Depends(require(*READERS))) -> list[Photo]:
    await _station_exists(request, station_id)
    return await photos_of(request, station_id, str(p["sub"]), limit, offset)


@router.get("/api/stations/{station_id}/photos/{photo_id}", response_class=Response,
            summary="The image bytes of a visible photo",
            responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in PHOTO_TYPES},
                             "description": "the image"},
                       404: {"description": "no such photo, or hidden"}})
async def get_photo(request: Request, station_id: str = StationId, photo_id: str = PhotoId,
                    _: dict = Depends(require(*READERS))) -> Response:
    rows = await _rows(request, "SELECT sha256, content_type FROM station_photos WHERE photo_id = %s "
                                "AND station_id = %s AND NOT hidden", (photo_id, station_id))
    if not rows:
        raise HTTPException(404, "no such photo")
    data = await asyncio.to_thread(blob_store(request).get, rows[0][0])
    if data is None:
        raise HTTPException(404, "the photo's bytes are missing from the document store")
    return Response(content=data, media_type=rows[0][1],
                    headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.delete("/api/stations/{station_id}/photos/{photo_id}", status_code=204,
               summary="Delete a photo I added",
               responses={202: {"model": Pending, "description": "accepted"},
                          403: {"description": "not my photo"}, 404: {"description": "no such photo"}})
async def delete_photo(request: Request, station_id: str = StationId, photo_id: str = PhotoId,
                       p: dict = Depends(require(*AUTHORS))) -> Response:
    me = str(p["sub"])
    rows = await _rows(request, "SELECT account_id FROM station_photos WHERE photo_id = %s AND station_id = %s",
                       (photo_id, station_id))
    if not rows:
        raise HTTPException(404, "no such photo")
    if rows[0][0] != me:
        raise HTTPException(403, "only the uploader may delete a photo (admins hide)")
    if not await _publish(request, station_id, "StationPhotoRemoved",
                          {"station_id": station_id, "photo_id": photo_id, "removed_by": me, "moderated": False,
                           "reason": None}):
        return _pending("the removal")
    return Response(status_code=204)


@router.post("/api/admin/community/stations/{station_id}/photos/{photo_id}/hide", response_model=Photo,
             summary="Moderation: hide a photo (kept for audit, no longer shown)",
             responses={202: {"model": Pending, "description": "accepted"}, 404: {"description": "no such photo"}})
async def hide_photo(body: Moderation, request: Request, station_id: str = StationId, photo_id: str = PhotoId,
                     p: dict = Depends(require("admin"))) -> Any:
    if not await _rows(request, "SELECT 1 FROM station_photos WHERE photo_id = %s AND station_id = %s",
                       (photo_id, station_id)):
        raise HTTPException(404, "no such photo")
    if not await _publish(request, station_id, "StationPhotoRemoved",
                          {"station_id": station_id, "photo_id": photo_id, "removed_by": str(p["sub"]),
                           "moderated": True, "reason": body.reason}):
        return _pending("the moderation")
    rows = await _rows(request, f"SELECT {_PHOTO_COLUMNS} FROM station_photos WHERE photo_id = %s", (photo_id,))
    if not rows:
        raise HTTPException(404, "the photo was deleted meanwhile")
    return _photo(rows[0], str(p["sub"]))
