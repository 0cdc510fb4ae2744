-- State of stateful stream processors (streams/stateful.py), per processor and key, committed in the same
-- transaction as the processor's input offsets (projection_offsets) once its outputs are on the log.
CREATE TABLE processor_state (
    processor text NOT NULL,
    key       text NOT NULL,
    state     jsonb NOT NULL,
    PRIMARY KEY (processor, key)
);
