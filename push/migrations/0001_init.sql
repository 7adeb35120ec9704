-- Push notifications: devices, interests, publishes and the outbound delivery queue.
CREATE TABLE push_devices (
    app_id        text        NOT NULL,
    id            text        NOT NULL,
    client_id     text        NOT NULL DEFAULT '',
    platform      text        NOT NULL,
    token         text        NOT NULL DEFAULT '',
    web_endpoint  text        NOT NULL DEFAULT '',
    web_p256dh    text        NOT NULL DEFAULT '',
    web_auth      text        NOT NULL DEFAULT '',
    form_factor   text        NOT NULL DEFAULT '',
    os            text        NOT NULL DEFAULT '',
    timezone      text        NOT NULL DEFAULT '',
    locale        text        NOT NULL DEFAULT '',
    metadata      text        NOT NULL DEFAULT '',
    secret_hash   text        NOT NULL DEFAULT '',
    state         text        NOT NULL DEFAULT 'ACTIVE',
    failure_count integer     NOT NULL DEFAULT 0,
    error_reason  text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX push_devices_client ON push_devices (app_id, client_id, id) WHERE client_id <> '';

-- key is "d:" || device_id for a device interest, "u:" || client_id for a user interest.
CREATE TABLE push_subscriptions (
    app_id    text NOT NULL,
    channel   text NOT NULL,
    key       text NOT NULL,
    device_id text NOT NULL DEFAULT '',
    client_id text NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, channel, key)
);
CREATE INDEX push_subscriptions_device ON push_subscriptions (app_id, device_id, channel) WHERE device_id <> '';
CREATE INDEX push_subscriptions_client ON push_subscriptions (app_id, client_id, channel) WHERE device_id = '';

CREATE TABLE push_publishes (
    app_id      text        NOT NULL,
    id          text        NOT NULL,
    request     text        NOT NULL,
    state       text        NOT NULL,
    planned     integer     NOT NULL DEFAULT 0,
    succeeded   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    expired     integer     NOT NULL DEFAULT 0,
    retries     integer     NOT NULL DEFAULT 0,
    removed     integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    due         timestamptz NOT NULL,
    cursor      text        NOT NULL DEFAULT '',
    lease_until timestamptz,
    error       text        NOT NULL DEFAULT '',
    PRIMARY KEY (app_id, id)
);
CREATE INDEX push_publishes_due ON push_publishes (due) WHERE state IN ('scheduled', 'accepted', 'planning');

CREATE TABLE push_deliveries (
    app_id        text        NOT NULL,
    publish_id    text        NOT NULL,
    device_id     text        NOT NULL,
    client_id     text        NOT NULL DEFAULT '',
    platform      text        NOT NULL,
    state         text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    due           timestamptz NOT NULL,
    lease_until   timestamptz,
    expires_at    timestamptz,
    provider_id   text        NOT NULL DEFAULT '',
    status        integer     NOT NULL DEFAULT 0,
    reason        text        NOT NULL DEFAULT '',
    token_removed boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (app_id, publish_id, device_id)
);
CREATE INDEX push_deliveries_due ON push_deliveries (due) WHERE state = 'pending';
CREATE INDEX push_deliveries_lease ON push_deliveries (lease_until) WHERE state = 'pending' AND lease_until IS NOT NULL;

CREATE TABLE push_delivery_events (
    app_id      text   NOT NULL,
    publish_id  text   NOT NULL,
    event_id    text   NOT NULL,
    seq         bigserial,
    occurred_at bigint NOT NULL,
    result      text   NOT NULL,
    PRIMARY KEY (app_id, publish_id, event_id)
);

-- The final state of a fully planned publish from its counters (Publish.settle in Go).
CREATE FUNCTION pushwire_push_settle(st text, planned integer, s integer, f integer, e integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN st <> 'dispatching' OR s + f + e < planned THEN st
        WHEN planned = 0 OR (f = 0 AND e = 0) THEN 'succeeded'
        WHEN s > 0 THEN 'partially_succeeded'
        WHEN f = 0 THEN 'expired'
        ELSE 'failed'
    END
$$;
