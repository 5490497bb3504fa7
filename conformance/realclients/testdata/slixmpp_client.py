#!/usr/bin/python3
"""Drive slixmpp (Debian python3-slixmpp 1.8.x) against a server under test.

Logs in as --jid over STARTTLS (default) or direct TLS (--direct-tls), with
the SASL mechanism forced by --mech, then optionally sends one chat message
(--send-to/--body) and/or waits for one whose body contains --expect (other
messages, such as a late one from an earlier run, are printed too). Everything observable is
printed to stdout as JSON lines, one object per event:

  {"event": "session", "jid": "...", "mechanism": "SCRAM-SHA-1", "tls": "TLSv1.3", "cipher": "..."}
  {"event": "message", "from": "...", "to": "...", "type": "chat", "body": "..."}
  {"event": "sasl-failure", "error": "<failure .../>"}  (slixmpp may then try another mechanism)
  {"event": "error", "error": "..."}

The process exits 0 only when every requested step succeeded, and 1 after
--timeout seconds at the latest. slixmpp's own debug log goes to stderr.
"""

import argparse
import asyncio
import json
import logging
import ssl
import sys

import slixmpp


def emit(**obj):
    print(json.dumps(obj), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True, help="full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true", help="XEP-0368 direct TLS instead of STARTTLS")
    p.add_argument("--mech", help="SASL mechanism to force (slixmpp's sasl_mech)")
    p.add_argument("--ca-file", help="trust only this certificate (PEM); without it, verification is off")
    p.add_argument("--send-to", help="JID to send one chat message to")
    p.add_argument("--body", help="body of that message")
    p.add_argument("--expect", help="wait for a message whose body contains this")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--no-channel-binding", action="store_true",
                   help="hide the TLS channel binding from SCRAM, so it sends gs2 flag 'n' instead of 'y'")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="slixmpp %(levelname)s %(name)s: %(message)s")

    xmpp = slixmpp.ClientXMPP(args.jid, args.password, sasl_mech=args.mech)
    loop = xmpp.loop
    done = loop.create_future()

    def finish(ok, error=None):
        if done.done():
            return  # e.g. the "disconnected" of the final disconnect
        if error is not None:
            emit(event="error", error=error)
        done.set_result(ok)

    if args.no_channel_binding:
        # slixmpp 1.8 knows only tls-unique and hands it to SCRAM whenever
        # the socket is TLS (even TLS 1.3, where RFC 9266 says tls-unique is
        # undefined); a non -PLUS SCRAM then sends gs2 flag 'y', which a
        # server that offered -PLUS must reject (RFC 5802 §6).
        mechanisms = xmpp["feature_mechanisms"]
        credentials = mechanisms.sasl_callback

        def without_channel_binding(required, optional):
            values = credentials(required, optional)
            if "channel_binding" in values:
                values["channel_binding"] = None
            return values
        mechanisms.sasl_callback = without_channel_binding

    if args.ca_file:
        xmpp.ca_certs = args.ca_file  # verifies the chain and the name of the JID's domain
    else:
        xmpp.ssl_context.check_hostname = False
        xmpp.ssl_context.verify_mode = ssl.CERT_NONE

    async def session_start(_):
        sock = xmpp.socket
        tls = sock.version() if isinstance(sock, (ssl.SSLSocket, ssl.SSLObject)) else None
        cipher = sock.cipher()[0] if tls else None
        mech = xmpp["feature_mechanisms"].mech
        emit(event="session", jid=str(xmpp.boundjid), mechanism=mech.name if mech else None,
             tls=tls, cipher=cipher)
        xmpp.send_presence()
        if args.send_to:
            xmpp.send_message(mto=args.send_to, mbody=args.body, mtype="chat")
        if args.expect is None:
            finish(True)

    def message(msg):
        if not msg["body"]:
            return  # chat states and the like
        emit(event="message", **{"from": str(msg["from"]), "to": str(msg["to"]),
                                 "type": msg["type"], "body": msg["body"]})
        if args.expect is not None and args.expect in msg["body"]:
            finish(True)

    xmpp.add_event_handler("session_start", session_start)
    xmpp.add_event_handler("message", message)
    xmpp.add_event_handler("failed_auth", lambda stanza: emit(event="sasl-failure", error=str(stanza)))
    xmpp.add_event_handler("failed_all_auth", lambda _: finish(False, "authentication failed"))
    xmpp.add_event_handler("no_auth", lambda _: finish(False, "no usable SASL mechanism"))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: finish(False, "TLS certificate rejected: %s" % e))
    xmpp.add_event_handler("connection_failed", lambda e: finish(False, "connection failed: %s" % e))
    xmpp.add_event_handler("stream_error", lambda e: finish(False, "stream error: %s" % e))
    xmpp.add_event_handler("disconnected", lambda reason: finish(False, "disconnected: %s" % reason))

    loop.call_later(args.timeout, lambda: finish(False, "timeout after %gs" % args.timeout))

    if args.direct_tls:
        xmpp.connect((args.host, args.port), use_ssl=True, force_starttls=False, disable_starttls=True)
    else:
        xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True)
    ok = loop.run_until_complete(done)
    if xmpp.transport is not None:
        # Flushes the send queue, sends </stream:stream> and waits (at most
        # 5s) for the server's.
        loop.run_until_complete(xmpp.disconnect(wait=5))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
