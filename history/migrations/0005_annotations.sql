-- pushwire history schema, version 5: annotations on mutable messages.
--
-- (Version 4 is presence history, added on another branch: the migrator applies whatever
-- versions a database has not recorded, in version order, so a gap or a late 4 is fine.)
--
-- pushwire_annotations holds every annotation event (action 1 create, 2 delete) of a
-- mutable message; a message's annotations go with it (ON DELETE CASCADE: retention,
-- history reset). seq is the channel's annotation serial number, given out by
-- pushwire_annotation_heads: the head row stays locked until the writing transaction
-- commits, so one channel's annotations commit in seq order on every node and a summary
-- read after a commit sees every smaller seq. deleted_by is, on a create, the seq of its
-- delete. Free-text fields are bytea for the reason given in version 2.

CREATE TABLE IF NOT EXISTS pushwire_annotation_heads (
    app_id  text   NOT NULL,
    channel text   NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (app_id, channel)
);

CREATE TABLE IF NOT EXISTS pushwire_annotations (
    app_id         text   NOT NULL,
    channel        text   NOT NULL,
    seq            bigint NOT NULL,
    message_serial text COLLATE "C" NOT NULL,
    action         smallint NOT NULL,
    id             text   NOT NULL,
    type           text   NOT NULL,
    name           bytea  NOT NULL,
    client_id      bytea  NOT NULL,
    count          bigint NOT NULL,
    data           bytea,
    encoding       bytea  NOT NULL,
    timestamp_ms   bigint NOT NULL,
    deleted_by     bigint,
    PRIMARY KEY (app_id, channel, seq),
    FOREIGN KEY (app_id, channel, message_serial)
        REFERENCES pushwire_versioned_messages (app_id, channel, message_serial) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS pushwire_annotations_message
    ON pushwire_annotations (app_id, channel, message_serial, seq);
