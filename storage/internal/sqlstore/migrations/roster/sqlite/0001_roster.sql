-- The roster with versioning (XEP-0237) and pending inbound subscription
-- requests (RFC 6121 §3.1.3); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE; Open
-- turns foreign_keys on).

-- The roster version of each account that has ever changed its roster:
-- incremented in the transaction of every put and delete. No row: 0.
CREATE TABLE roster_versions (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	version  INTEGER NOT NULL CHECK (version > 0),
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Live roster items; version is the roster version of the item's last put.
CREATE TABLE roster_items (
	host         TEXT NOT NULL,
	username     TEXT NOT NULL,
	contact      TEXT NOT NULL,
	name         TEXT NOT NULL,
	groups       TEXT NOT NULL, -- JSON array of strings, sorted byte-wise, no duplicates
	subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
	ask          INTEGER NOT NULL CHECK (ask IN (0, 1)),
	approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
	version      INTEGER NOT NULL,
	PRIMARY KEY (host, username, contact),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Tombstones of removed items, so that an incremental roster answer can
-- report removals; version is the roster version of the removal. A contact
-- is in at most one of roster_items and roster_removed.
CREATE TABLE roster_removed (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	contact  TEXT NOT NULL,
	version  INTEGER NOT NULL,
	PRIMARY KEY (host, username, contact),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Inbound subscription requests awaiting an answer; seq orders them by
-- arrival (a replaced request takes a new seq).
CREATE TABLE subscription_requests (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	contact  TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	stanza   BLOB NOT NULL,
	PRIMARY KEY (host, username, contact),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
