-- A new link asked for from the workspace's expired-link page (workspace.link_requested): the alert that
-- carries it names the request (its key is link:<request id>); rendered with the new_link templates.
ALTER TABLE alert ADD COLUMN link_request_id uuid;
