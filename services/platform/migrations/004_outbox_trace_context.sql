-- The W3C trace context of the span that wrote the event, published by the relay as the record's
-- traceparent/tracestate headers (services/platform/tracing.py); NULL when tracing is off.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE outbox ADD COLUMN tracestate text;
