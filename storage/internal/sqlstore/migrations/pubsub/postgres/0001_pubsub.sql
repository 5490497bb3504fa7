-- Personal eventing (XEP-0163 on XEP-0060): each account's nodes and
-- their items. A node's configuration keeps the fields the PEP module
-- enforces and compares publish-options with as columns, and the rest of
-- the form as JSON (extra), read and written whole with the node. items,
-- bytes and last_seq are kept by every write of the node's items, in its
-- transaction: its item count and payload bytes (an account's quota
-- totals are a sum over its nodes), and the seq of its newest item.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE;
-- DeleteAccount removes the rows first). COLLATE "C" keeps ordering
-- byte-wise.
CREATE TABLE pubsub_nodes (
	host           text COLLATE "C" NOT NULL,
	username       text COLLATE "C" NOT NULL,
	node           text COLLATE "C" NOT NULL,
	access_model   text NOT NULL, -- open, presence, roster, whitelist
	persist_items  boolean NOT NULL,
	max_items      integer NOT NULL, -- 0: "max"
	send_last      text NOT NULL, -- pubsub#send_last_published_item
	notify_retract boolean NOT NULL,
	whitelist      text NOT NULL, -- JSON array of JIDs
	extra          text NOT NULL, -- JSON object: the form's other fields, var → values
	items          integer NOT NULL CHECK (items >= 0),
	bytes          bigint NOT NULL CHECK (bytes >= 0),
	last_seq       bigint NOT NULL,
	PRIMARY KEY (host, username, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- A node's items: seq orders them by publication (a republished item
-- takes the node's next seq), so that the last N, the last published one
-- and the oldest to trim are read from the front or back of
-- pubsub_items_order, whatever the node's and the table's size.
CREATE TABLE pubsub_items (
	host      text COLLATE "C" NOT NULL,
	username  text COLLATE "C" NOT NULL,
	node      text COLLATE "C" NOT NULL,
	item_id   text COLLATE "C" NOT NULL,
	seq       bigint NOT NULL,
	publisher text NOT NULL,
	payload   bytea NOT NULL,
	published timestamptz NOT NULL,
	PRIMARY KEY (host, username, node, item_id),
	FOREIGN KEY (host, username, node) REFERENCES pubsub_nodes (host, username, node) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pubsub_items_order ON pubsub_items (host, username, node, seq);
