-- The next offset each projection will apply, per topic-partition; written in the same transaction as the rows,
-- so a crash between the two is impossible and a re-delivered event is skipped.
CREATE TABLE projection_offsets (
    projection  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
