-- A Kafka record's headers as received (JSON array; a value that is not text kept as base64), and its key
-- as bytes when it is not UTF-8 (emitter_key then holds it with replacement characters). NULL otherwise.
ALTER TABLE raw_inbound ADD COLUMN kafka_key bytea;
ALTER TABLE raw_inbound ADD COLUMN kafka_headers jsonb;
