-- Accounts and their SCRAM credentials, one row per hash family.
CREATE TABLE accounts (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	created  INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;

CREATE TABLE credentials (
	host       TEXT NOT NULL,
	username   TEXT NOT NULL,
	hash       TEXT NOT NULL,
	salt       BLOB NOT NULL,
	iterations INTEGER NOT NULL,
	stored_key BLOB NOT NULL,
	server_key BLOB NOT NULL,
	PRIMARY KEY (host, username, hash),
	FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
