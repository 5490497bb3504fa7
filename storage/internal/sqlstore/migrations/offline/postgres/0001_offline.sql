-- Offline messages (XEP-0160); issue 4's migration 0002.
-- Everything hangs off accounts and goes with it (ON DELETE CASCADE).
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.

-- Offline messages. Writers of one account hold its accounts row (FOR NO
-- KEY UPDATE) while they count and insert, so ids grow in commit order per
-- account and the quota holds.
CREATE TABLE offline_messages (
	id       bigint GENERATED ALWAYS AS IDENTITY,
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	stanza   bytea NOT NULL,
	stored   timestamptz NOT NULL,
	PRIMARY KEY (host, username, id),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
