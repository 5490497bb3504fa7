// Logs in to an XMPP server with xmpp.js (@xmpp/client) and reports what
// happens as JSON lines on stdout, for conformance/xmppjs:
//   {"event":"online","jid":"...","mechanism":"..."}
//   {"event":"message","from":"...","to":"...","type":"...","body":"..."}
//   {"event":"error","error":"..."}
// It sends one chat message when --send-to is given, and waits for one
// message when --expect-from is given, then closes the stream.
//
// usage: node client.mjs --service xmpp://127.0.0.1:5222 --domain localhost
//          --username alice --password pw --resource r --mechanism SCRAM-SHA-1
//          [--send-to JID --body TEXT] [--expect-from JID]
import { parseArgs } from "node:util";
import { client, xml } from "@xmpp/client";

const { values: opt } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string" },
    username: { type: "string" },
    password: { type: "string" },
    resource: { type: "string" },
    mechanism: { type: "string" },
    "send-to": { type: "string" },
    body: { type: "string" },
    "expect-from": { type: "string" },
  },
});

const report = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let used = "";

const xmpp = client({
  service: opt.service,
  domain: opt.domain,
  resource: opt.resource,
  // Force the mechanism under test instead of xmpp.js's own preference.
  credentials: async (authenticate, mechanisms) => {
    if (!mechanisms.includes(opt.mechanism)) {
      throw new Error(`server does not offer ${opt.mechanism} (offers ${mechanisms})`);
    }
    used = opt.mechanism;
    await authenticate({ username: opt.username, password: opt.password }, opt.mechanism);
  },
});

const done = (code) => {
  xmpp.stop().finally(() => process.exit(code));
};

xmpp.on("error", (err) => {
  report({ event: "error", error: String(err && (err.condition || err.message) || err) });
  process.exit(1);
});

let waiting = Boolean(opt["expect-from"]);
xmpp.on("stanza", (st) => {
  if (!st.is("message") || st.attrs.type === "error") return;
  report({
    event: "message",
    from: st.attrs.from,
    to: st.attrs.to,
    type: st.attrs.type || "",
    body: st.getChildText("body") || "",
  });
  if (waiting && st.attrs.from === opt["expect-from"]) {
    waiting = false;
    done(0);
  }
});

xmpp.on("online", async (address) => {
  report({ event: "online", jid: address.toString(), mechanism: used });
  if (opt["send-to"]) {
    await xmpp.send(
      xml("message", { to: opt["send-to"], type: "chat", id: "xmppjs-1" }, xml("body", {}, opt.body)),
    );
  }
  if (!waiting) done(0);
});

xmpp.start().catch((err) => {
  report({ event: "error", error: String(err && (err.condition || err.message) || err) });
  process.exit(1);
});
