-- Dead-letter reason `db_rejected`: a message the codec accepts but the database refuses (a data
-- exception or a constraint, SQLSTATE classes 22/23). Ingest isolates it by splitting the batch,
-- stores the rest and keeps this one here with the database's message in `detail`.
ALTER TABLE dead_letters DROP CONSTRAINT IF EXISTS dead_letters_reason_check;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_reason_check
    CHECK (reason IN ('bad_topic', 'too_large', 'bad_json', 'bad_schema', 'unknown_device',
                      'type_mismatch', 'future_ts', 'internal_error', 'db_rejected'));
