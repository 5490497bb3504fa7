-- Push notification registrations (XEP-0357): the app servers each
-- account asked to be notified, one row per (jid, node). Everything hangs
-- off accounts and goes with it (ON DELETE CASCADE; Open turns
-- foreign_keys on).

CREATE TABLE push_registrations (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	jid      TEXT NOT NULL, -- the XMPP Push Service
	node     TEXT NOT NULL,
	options  TEXT NOT NULL, -- the publish-options fields: JSON [{"var": …, "values": […]}, …]
	enabled  INTEGER NOT NULL, -- Unix milliseconds
	PRIMARY KEY (host, username, jid, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
