-- The data storagetest.CheckUpgraded expects, as the SQLite backend stored
-- it before migrations were per aggregate.
INSERT INTO accounts VALUES ('example.org', 'alice', 1700000000), ('example.org', 'bob', 1700000001);
INSERT INTO credentials VALUES
	('example.org', 'alice', 'SHA-1', x'01', 4096, x'02', x'03'),
	('example.org', 'alice', 'SHA-256', x'11', 5000, x'12', x'13');
INSERT INTO roster_versions VALUES ('example.org', 'alice', 5);
INSERT INTO roster_items VALUES
	('example.org', 'alice', 'a@example.net', 'A', '["Friends","Work"]', 'both', 0, 0, 3),
	('example.org', 'alice', 'b@example.net', '', '[]', 'none', 1, 1, 5);
INSERT INTO roster_removed VALUES ('example.org', 'alice', 'c@example.net', 4);
INSERT INTO subscription_requests VALUES
	('example.org', 'alice', 'e@example.net', 1, CAST('<presence from=''e''/>' AS BLOB)),
	('example.org', 'alice', 'd@example.net', 2, CAST('<presence from=''d''/>' AS BLOB));
INSERT INTO offline_messages (host, username, stanza, stored) VALUES
	('example.org', 'alice', CAST('<message>1</message>' AS BLOB), 1700000000123),
	('example.org', 'alice', CAST('<message>gone</message>' AS BLOB), 1700000000200),
	('example.org', 'alice', CAST('<message>2</message>' AS BLOB), 1700000000456);
DELETE FROM offline_messages WHERE stanza = CAST('<message>gone</message>' AS BLOB);
INSERT INTO blocklist VALUES ('example.org', 'alice', 'spam@example.net'), ('example.org', 'alice', 'troll@example.com');
INSERT INTO documents VALUES ('example.org', 'alice', 'vcard', CAST('<vCard xmlns=''vcard-temp''/>' AS BLOB));
INSERT INTO last_activity VALUES ('example.org', 'alice', 1700000000789, 'gone');
