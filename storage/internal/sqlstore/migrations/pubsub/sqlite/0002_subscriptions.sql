-- Explicit subscriptions to personal eventing nodes (XEP-0060 §6.1): one
-- per subscriber JID (bare or full, as it subscribed) and node, in the
-- state subscribed. sub_host and sub_username are the subscriber's
-- domainpart and localpart, so that the subscriptions of a local account
-- being deleted are found (DeleteAccount) and those of one bare JID
-- (XEP-0060 §5.6) read from pubsub_subscriptions_by. The owner's rows go
-- with the node (ON DELETE CASCADE; DeletePubSubNode and DeleteAccount
-- remove them first).
CREATE TABLE pubsub_subscriptions (
	host         TEXT NOT NULL,
	username     TEXT NOT NULL,
	node         TEXT NOT NULL,
	jid          TEXT NOT NULL,
	sub_host     TEXT NOT NULL,
	sub_username TEXT NOT NULL, -- '' for a domain's JID
	PRIMARY KEY (host, username, node, jid),
	FOREIGN KEY (host, username, node) REFERENCES pubsub_nodes (host, username, node) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX pubsub_subscriptions_by ON pubsub_subscriptions (sub_host, sub_username);
