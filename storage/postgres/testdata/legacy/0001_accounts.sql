-- Accounts and their SCRAM credentials, one row per hash family.
-- COLLATE "C" keeps ordering byte-wise, as in Go, whatever the database locale.
CREATE TABLE accounts (
	host     text COLLATE "C" NOT NULL,
	username text COLLATE "C" NOT NULL,
	created  timestamptz NOT NULL,
	PRIMARY KEY (host, username)
);

CREATE TABLE credentials (
	host       text COLLATE "C" NOT NULL,
	username   text COLLATE "C" NOT NULL,
	hash       text NOT NULL,
	salt       bytea NOT NULL,
	iterations integer NOT NULL,
	stored_key bytea NOT NULL,
	server_key bytea NOT NULL,
	PRIMARY KEY (host, username, hash),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
