-- Ratings, reviews and photos of stations (the `community` topic), for station detail and moderation.
-- One review per (station, author): a new one replaces it.  Hidden rows (moderation) stay for audit, unseen.
-- Timestamps come from the events, never now(): a replay gives identical rows.
CREATE TABLE station_reviews (
    station_id     text NOT NULL,
    account_id     text NOT NULL,
    rating         smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    text           text,
    posted_at      timestamptz NOT NULL,
    hidden         boolean NOT NULL DEFAULT false,
    hidden_by      text,
    hidden_reason  text,
    event_id       text NOT NULL,
    PRIMARY KEY (station_id, account_id)
);
CREATE INDEX station_reviews_visible ON station_reviews (station_id, posted_at DESC) WHERE NOT hidden;

CREATE TABLE station_photos (
    photo_id       text PRIMARY KEY,
    station_id     text NOT NULL,
    account_id     text NOT NULL,
    sha256         text NOT NULL,
    size_bytes     bigint NOT NULL,
    content_type   text NOT NULL,
    added_at       timestamptz NOT NULL,
    hidden         boolean NOT NULL DEFAULT false,
    hidden_by      text,
    hidden_reason  text,
    event_id       text NOT NULL
);
CREATE INDEX station_photos_by_station ON station_photos (station_id, added_at DESC) WHERE NOT hidden;
