#!/usr/bin/python3
"""Drive nbxmpp (Gajim's library; Debian python3-nbxmpp 4.2.x) against a server under test.

Same interface and output as slixmpp_client.py: logs in as --jid over
STARTTLS (default) or direct TLS (--direct-tls), with the SASL mechanism
forced by --mech (nbxmpp's set_mechs), then optionally sends one chat
message (--send-to/--body) and/or waits for one whose body contains
--expect (other messages are printed too). Everything observable is printed
to stdout as JSON lines, one object per event:

  {"event": "session", "jid": "...", "mechanism": "SCRAM-SHA-1", "tls": "TLS_1_3", "cipher": "..."}
  {"event": "message", "from": "...", "to": "...", "type": "chat", "body": "..."}
  {"event": "sasl-failure", "error": "<failure .../>"}
  {"event": "error", "error": "..."}

"mechanism" is read off the wire: the mechanism attribute of the <auth/>
(or SASL2 <authenticate/>) element nbxmpp actually sent.

--ca-file pins the server certificate: nbxmpp (through GIO) verifies the
chain and the name of the JID's domain as usual, and the only error it
forgives is "unknown CA", and only for exactly that certificate (nbxmpp's
set_accepted_certificates, what Gajim stores when a user trusts a
certificate). Any other certificate, or a name mismatch, fails the login.

The process exits 0 only when every requested step succeeded and the
stream was closed cleanly, and 1 after --timeout seconds at the latest.
nbxmpp's own debug log goes to stderr.
"""

import argparse
import json
import logging
import re
import sys

import gi
gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

import nbxmpp  # noqa: E402
from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType, StreamState  # noqa: E402
from nbxmpp.protocol import JID, Message, Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402

AUTH_RE = re.compile(r"""<(?:auth|authenticate)\b[^>]*\bmechanism=["']([^"']+)["']""")
FAILURE_RE = re.compile(r"""<failure\b[^>]*xmlns=["'](?:urn:ietf:params:xml:ns:xmpp-sasl|urn:xmpp:sasl:2)["']""")


def emit(**obj):
    print(json.dumps(obj), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True, help="full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true", help="XEP-0368 direct TLS instead of STARTTLS")
    p.add_argument("--mech", help="the only SASL mechanism nbxmpp may use")
    p.add_argument("--ca-file", help="accept only this certificate (PEM); without it, certificate errors are ignored")
    p.add_argument("--send-to", help="JID to send one chat message to")
    p.add_argument("--body", help="body of that message")
    p.add_argument("--expect", help="wait for a message whose body contains this")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="nbxmpp %(levelname)s %(name)s: %(message)s")

    jid = JID.from_string(args.jid)
    loop = GLib.MainLoop()
    state = {"ok": None, "mechanism": None, "bound": False, "closing": False}

    def finish(ok, error=None):
        if state["ok"] is not None:
            return
        if error is not None:
            emit(event="error", error=error)
        state["ok"] = ok
        if ok and state["bound"] and client.state != StreamState.DISCONNECTED:
            # A clean close: nbxmpp sends </stream:stream> after anything
            # still queued (the message) and "disconnected" follows once
            # the server has closed its side.
            state["closing"] = True
            client.disconnect()
            return
        if client.state != StreamState.DISCONNECTED:
            client.disconnect(immediate=True)
        loop.quit()

    def guarded(fn):
        # An exception in a GLib callback would only be printed; make it fail the run.
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except Exception as e:  # noqa: BLE001
                logging.exception("in %s", fn.__name__)
                finish(False, "exception in %s: %r" % (fn.__name__, e))
        return wrapper

    client = Client(log_context="nbxmpp-" + (jid.resource or ""))
    client.set_username(jid.localpart)
    client.set_domain(jid.domain)
    client.set_resource(jid.resource)
    client.set_password(args.password)
    conn_type = ConnectionType.DIRECT_TLS if args.direct_tls else ConnectionType.START_TLS
    client.set_custom_host("%s:%d" % (args.host, args.port), ConnectionProtocol.TCP, conn_type)
    if args.mech:
        client.set_mechs({args.mech})
    if args.ca_file:
        client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(args.ca_file)])
    else:
        client.set_ignore_tls_errors(True)

    @guarded
    def on_sent(_client, _signal, data):
        m = AUTH_RE.search(str(data))
        if m:
            state["mechanism"] = m.group(1)

    @guarded
    def on_received(_client, _signal, data):
        s = str(data)
        if FAILURE_RE.match(s.lstrip()):
            emit(event="sasl-failure", error=s)

    @guarded
    def on_connected(_client, _signal):
        state["bound"] = True
        version = client.tls_version
        tls = version.value_nick.upper().replace("-", "_") if version is not None else None
        if not client.is_stream_secure:
            tls = None
        emit(event="session", jid=str(client.get_bound_jid()), mechanism=state["mechanism"],
             tls=tls, cipher=client.ciphersuite)
        client.send_stanza(Presence())
        if args.send_to:
            client.send_stanza(Message(to=args.send_to, body=args.body, typ="chat"))
        if args.expect is None:
            finish(True)

    @guarded
    def on_message(_client, stanza, _properties):
        body = stanza.getBody()
        if not body:
            return  # chat states and the like
        emit(event="message", **{"from": str(stanza.getFrom()), "to": str(stanza.getTo()),
                                 "type": stanza.getType() or "normal", "body": body})
        if args.expect is not None and args.expect in body:
            finish(True)

    def describe_error():
        domain, error, text = client.get_error()
        _cert, errors = client.peer_certificate
        s = "%s: %s%s" % (domain, error, " (%s)" % text if text else "")
        if errors:
            s += "; certificate errors: %s" % sorted(str(e) for e in errors)
        return s

    @guarded
    def on_disconnected(_client, _signal):
        if state["closing"]:
            loop.quit()
            return
        finish(False, "disconnected: %s" % describe_error())
        loop.quit()

    @guarded
    def on_connection_failed(_client, _signal):
        finish(False, "connection failed: %s" % describe_error())
        loop.quit()

    def on_timeout():
        if state["ok"] is None:
            finish(False, "timeout after %gs" % args.timeout)
        else:  # the clean close did not complete
            emit(event="error", error="stream not closed within %gs" % args.timeout)
            state["ok"] = False
            loop.quit()
        return False

    client.subscribe("stanza-sent", on_sent)
    client.subscribe("stanza-received", on_received)
    client.subscribe("connected", on_connected)
    client.subscribe("disconnected", on_disconnected)
    client.subscribe("connection-failed", on_connection_failed)
    client.register_handler(StanzaHandler(name="message", callback=on_message))

    GLib.timeout_add(int(args.timeout * 1000), on_timeout)
    logging.info("nbxmpp %s", nbxmpp.__version__)
    client.connect()
    loop.run()
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
