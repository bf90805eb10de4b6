-- Operations (docs/operations.md): the W3C trace context of the decision's record span, for each delivery
-- attempt's span to be its child; when ingest received the act (orientation.decided's act_received_at),
-- and when a delivery of the alert was first accepted by the SMTP server or SMS provider — set once, so
-- the end-to-end latency is observed once per alert. NULL for alerts recorded before, or caused by no act.
ALTER TABLE alert
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate text,
    ADD COLUMN act_received_at timestamptz,
    ADD COLUMN first_accepted_at timestamptz;
