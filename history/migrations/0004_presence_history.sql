-- pushwire history schema, version 4: presence history.
--
-- Every membership change of a presence channel is a row of pushwire_presence_events, with
-- its own per-channel serial. pushwire_presence_streams holds each channel's stream id, its
-- head serial and the running total of payload bytes; upserting it takes its row lock until
-- commit, which orders the events of one channel across every node (as pushwire_streams does
-- for messages). cum_bytes is the stream's total after the event, so the events a byte bound
-- keeps are those with cum_bytes > total - bound.
--
-- pushwire_presence_members holds each channel's current members as the recorded events
-- leave them: a member_added of a user already there, or a member_removed of a user not
-- there, is the same change reported twice (two nodes) and is not recorded.
-- user_id and payload are bytea: a NUL byte in a user id must not be refused.

CREATE TABLE IF NOT EXISTS pushwire_presence_streams (
    app_id      text   NOT NULL,
    channel     text   NOT NULL,
    stream_id   text   NOT NULL,
    head_serial bigint NOT NULL,
    total_bytes bigint NOT NULL,
    PRIMARY KEY (app_id, channel)
);

CREATE TABLE IF NOT EXISTS pushwire_presence_events (
    app_id          text     NOT NULL,
    channel         text     NOT NULL,
    serial          bigint   NOT NULL,
    stream_id       text     NOT NULL,
    event           smallint NOT NULL,
    cause           text     NOT NULL,
    user_id         bytea    NOT NULL,
    connection_id   text,
    dead_node_id    text,
    published_at_ms bigint   NOT NULL,
    payload         bytea    NOT NULL,
    cum_bytes       bigint   NOT NULL,
    PRIMARY KEY (app_id, channel, serial)
);

CREATE INDEX IF NOT EXISTS pushwire_presence_events_time
    ON pushwire_presence_events (app_id, channel, published_at_ms);

CREATE TABLE IF NOT EXISTS pushwire_presence_members (
    app_id  text  NOT NULL,
    channel text  NOT NULL,
    user_id bytea NOT NULL,
    PRIMARY KEY (app_id, channel, user_id)
);
