-- Personal eventing (XEP-0163 on XEP-0060): each account's nodes and
-- their items. A node's configuration keeps the fields the PEP module
-- enforces and compares publish-options with as columns, and the rest of
-- the form as JSON (extra), read and written whole with the node. items,
-- bytes and last_seq are kept by every write of the node's items, in its
-- transaction: its item count and payload bytes (an account's quota
-- totals are a sum over its nodes), and the seq of its newest item.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on; DeleteAccount removes the rows first).
CREATE TABLE pubsub_nodes (
	host           TEXT NOT NULL,
	username       TEXT NOT NULL,
	node           TEXT NOT NULL,
	access_model   TEXT NOT NULL, -- open, presence, roster, whitelist
	persist_items  INTEGER NOT NULL CHECK (persist_items IN (0, 1)),
	max_items      INTEGER NOT NULL, -- 0: "max"
	send_last      TEXT NOT NULL, -- pubsub#send_last_published_item
	notify_retract INTEGER NOT NULL CHECK (notify_retract IN (0, 1)),
	whitelist      TEXT NOT NULL, -- JSON array of JIDs
	extra          TEXT NOT NULL, -- JSON object: the form's other fields, var → values
	items          INTEGER NOT NULL CHECK (items >= 0),
	bytes          INTEGER NOT NULL CHECK (bytes >= 0),
	last_seq       INTEGER NOT NULL,
	PRIMARY KEY (host, username, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- A node's items: seq orders them by publication (a republished item
-- takes the node's next seq), so that the last N, the last published one
-- and the oldest to trim are read from the front or back of
-- pubsub_items_order, whatever the node's and the table's size. A rowid
-- table: payloads (avatars) can be large.
CREATE TABLE pubsub_items (
	host      TEXT NOT NULL,
	username  TEXT NOT NULL,
	node      TEXT NOT NULL,
	item_id   TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	publisher TEXT NOT NULL,
	payload   BLOB NOT NULL,
	published INTEGER NOT NULL, -- Unix milliseconds
	UNIQUE (host, username, node, item_id),
	FOREIGN KEY (host, username, node) REFERENCES pubsub_nodes (host, username, node) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX pubsub_items_order ON pubsub_items (host, username, node, seq);
