-- Push notification registrations (XEP-0357): the app servers each
-- account asked to be notified, one row per (jid, node). Everything hangs
-- off accounts and goes with it (ON DELETE CASCADE).
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.

CREATE TABLE push_registrations (
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	jid      text COLLATE "C" NOT NULL, -- the XMPP Push Service
	node     text COLLATE "C" NOT NULL,
	options  text NOT NULL, -- the publish-options fields: JSON [{"var": …, "values": […]}, …]
	enabled  timestamptz NOT NULL,
	PRIMARY KEY (host, username, jid, node),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
