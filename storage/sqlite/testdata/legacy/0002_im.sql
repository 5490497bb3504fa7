-- Issue 4: roster with versioning (XEP-0237), pending inbound subscription
-- requests, offline messages (XEP-0160), blocklist (XEP-0191), per-account
-- documents (vCard-temp, private XML storage) and last activity (XEP-0012).
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

-- Offline messages. AUTOINCREMENT: ids are never reused, even after the
-- newest ones are deleted, so a stale "through" cannot reach new messages.
CREATE TABLE offline_messages (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	stanza   BLOB NOT NULL,
	stored   INTEGER NOT NULL, -- Unix milliseconds
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;
CREATE INDEX offline_messages_account ON offline_messages (host, username, id);

CREATE TABLE blocklist (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	jid      TEXT NOT NULL,
	PRIMARY KEY (host, username, jid),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Small opaque documents under a key ("vcard", "private {ns} local"). A
-- rowid table: a vCard with a photo is too large a row for WITHOUT ROWID.
CREATE TABLE documents (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	key      TEXT NOT NULL,
	doc      BLOB NOT NULL,
	PRIMARY KEY (host, username, key),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT;

CREATE TABLE last_activity (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	at       INTEGER NOT NULL, -- Unix milliseconds
	status   TEXT NOT NULL,
	PRIMARY KEY (host, username),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
