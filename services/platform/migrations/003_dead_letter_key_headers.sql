-- A parked record keeps its key and headers as received, to replay it exactly: the key as bytes, the
-- headers as a JSON array where a value that is not text is base64 (services.platform.kafka.header_entries).
ALTER TABLE dead_letter ADD COLUMN key bytea;
ALTER TABLE dead_letter ADD COLUMN headers jsonb;
