-- The prediction log: one row per inference request, partitioned by month (UTC).
-- Partitions (predictions_pYYYYMM) are created ahead by the writer and dropped by retention.
CREATE TABLE predictions (
    created_at     timestamptz NOT NULL,
    request_id     text,                   -- the client's id, if it sent one
    model          text        NOT NULL,
    model_version  integer,
    status         text        NOT NULL,
    latency_ms     real        NOT NULL,
    queue_ms       real,
    batch_size     integer,
    request_rows   integer     NOT NULL,
    cached_rows    integer     NOT NULL DEFAULT 0,
    input_hash     bytea,
    output_summary jsonb
) PARTITION BY RANGE (created_at);

CREATE INDEX predictions_model_created_at ON predictions (model, created_at);

-- One row per COPY, in the same transaction: a batch retried after an ambiguous commit
-- (the connection lost while committing) is recognised and never written twice.
CREATE TABLE predlog_batches (
    batch_id   uuid        PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now()
);
