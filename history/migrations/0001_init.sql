-- pushwire history schema, version 1: one row per channel stream (its id and the last serial
-- handed out) and one row per stored message.
CREATE TABLE IF NOT EXISTS pushwire_streams (
    app_id      text   NOT NULL,
    channel     text   NOT NULL,
    stream_id   text   NOT NULL,
    head_serial bigint NOT NULL,
    PRIMARY KEY (app_id, channel)
);

CREATE TABLE IF NOT EXISTS pushwire_messages (
    app_id          text   NOT NULL,
    channel         text   NOT NULL,
    serial          bigint NOT NULL,
    stream_id       text   NOT NULL,
    event           text   NOT NULL,
    data            bytea  NOT NULL,
    name            text   NOT NULL DEFAULT '',
    user_id         text   NOT NULL DEFAULT '',
    tags            jsonb,
    message_id      text   NOT NULL DEFAULT '',
    extras          bytea,
    published_at_ms bigint NOT NULL,
    size_bytes      integer NOT NULL,
    PRIMARY KEY (app_id, channel, serial)
);

CREATE INDEX IF NOT EXISTS pushwire_messages_time ON pushwire_messages (app_id, channel, published_at_ms);
CREATE INDEX IF NOT EXISTS pushwire_messages_age ON pushwire_messages (published_at_ms);
