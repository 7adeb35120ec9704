-- pushwire history schema, version 3: mutable (versioned) messages.
--
-- Every delivery of a mutable message is a row of pushwire_messages, so resume replays
-- creates and mutations in delivery (serial) order: kind 1 is a create, kind 2 an update,
-- delete or append delivery (history listings skip kind 2), kind 0 an ordinary message.
-- mutable holds the delivery's version fields as JSON (action, serials, version metadata).
--
-- pushwire_versioned_messages keeps each message's latest aggregate, one row per message;
-- locking it (SELECT ... FOR UPDATE) orders the mutations of one message across every node.
-- pushwire_message_versions keeps every version; op_key makes op_id retries idempotent.
-- Free-text fields are bytea for the reason given in version 2 (a NUL byte must not be
-- refused). Serials compare byte-wise (COLLATE "C"): their order is their time order.

ALTER TABLE pushwire_messages
    ADD COLUMN kind smallint NOT NULL DEFAULT 0,
    ADD COLUMN mutable bytea;

CREATE TABLE IF NOT EXISTS pushwire_versioned_messages (
    app_id                 text   NOT NULL,
    channel                text   NOT NULL,
    message_serial         text COLLATE "C" NOT NULL,
    history_serial         bigint NOT NULL,
    stream_id              text   NOT NULL,
    event                  bytea  NOT NULL,
    data                   bytea,
    extras                 bytea,
    tags                   json,
    user_id                bytea  NOT NULL,
    original_client_id     bytea  NOT NULL,
    latest_action          text   NOT NULL,
    latest_version_serial  text   NOT NULL,
    latest_version_ms      bigint NOT NULL,
    latest_client_id       bytea  NOT NULL,
    latest_description     bytea  NOT NULL,
    latest_metadata        bytea,
    latest_delivery_serial bigint NOT NULL,
    latest_message_id      text   NOT NULL,
    created_at_ms          bigint NOT NULL,
    PRIMARY KEY (app_id, channel, message_serial)
);

-- Age retention of mutable messages: by their last change.
CREATE INDEX IF NOT EXISTS pushwire_versioned_messages_age ON pushwire_versioned_messages (latest_version_ms);

CREATE TABLE IF NOT EXISTS pushwire_message_versions (
    app_id          text   NOT NULL,
    channel         text   NOT NULL,
    message_serial  text COLLATE "C" NOT NULL,
    version_serial  text COLLATE "C" NOT NULL,
    delivery_serial bigint NOT NULL,
    history_serial  bigint NOT NULL,
    action          text   NOT NULL,
    event           bytea  NOT NULL,
    data            bytea,
    extras          bytea,
    client_id       bytea  NOT NULL,
    description     bytea  NOT NULL,
    metadata        bytea,
    timestamp_ms    bigint NOT NULL,
    message_id      text   NOT NULL,
    stream_id       text   NOT NULL,
    op_key          text,
    fingerprint     text,
    PRIMARY KEY (app_id, channel, message_serial, version_serial)
);

CREATE UNIQUE INDEX IF NOT EXISTS pushwire_message_versions_op
    ON pushwire_message_versions (app_id, channel, op_key) WHERE op_key IS NOT NULL;
