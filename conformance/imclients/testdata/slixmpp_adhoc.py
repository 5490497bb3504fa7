#!/usr/bin/python3
"""Service administration (XEP-0133) from slixmpp (Debian python3-slixmpp 1.8.x).

Logs in as --jid over STARTTLS with the SASL mechanism forced by --mech,
trusting only --ca-file, then, each step through slixmpp's xep_0050 plugin
as a client built on it does:

  1. get_commands() of the server (disco#items of the commands node);
  2. unless --expect-none: start_command() of add-user, whose form must ask
     for accountjid, then complete_command() with the form filled in for
     --new-jid and --new-password; the command must complete;
  3. unless --expect-none: a second client logs in as --new-jid with
     --new-password.

With --expect-none the command list must be empty and executing add-user
must fail with <forbidden/> (a user who is not an administrator).

Prints one JSON object per line: {"step": "commands", "nodes": [...]},
{"step": "form", "vars": [...]}, {"step": "completed", "notes": [...]},
{"step": "refused", "condition": C}, {"step": "login", "jid": J}; and
{"step": "fatal", "error": E} before exiting 1.
"""

import argparse
import asyncio
import json
import logging
import sys

import slixmpp

ADD_USER = "http://jabber.org/protocol/admin#add-user"


def emit(**kw):
    print(json.dumps(kw), flush=True)


def client(jid, password, args):
    xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=args.mech)
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0004")
    xmpp.register_plugin("xep_0050")
    xmpp.ca_certs = args.ca_file
    # slixmpp 1.8 hands SCRAM the tls-unique channel binding even on
    # TLS 1.3, where it is undefined (RFC 9266): hidden, as in
    # slixmpp_client.py, so that plain SCRAM says it does not bind.
    mechanisms = xmpp["feature_mechanisms"]
    credentials = mechanisms.sasl_callback

    def without_channel_binding(required, optional):
        values = credentials(required, optional)
        if "channel_binding" in values:
            values["channel_binding"] = None
        return values
    mechanisms.sasl_callback = without_channel_binding
    return xmpp


async def session_of(xmpp, args):
    """Connects xmpp and waits for its session to start."""
    started = xmpp.loop.create_future()
    xmpp.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    xmpp.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(RuntimeError("authentication failed")))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: started.done() or started.set_exception(RuntimeError("TLS certificate rejected: %s" % e)))
    xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True)
    await started


async def run(args):
    admin = client(args.jid, args.password, args)
    await session_of(admin, args)
    server = admin.boundjid.domain
    adhoc = admin["xep_0050"]

    items = await adhoc.get_commands(server)
    nodes = [item[1] for item in items["disco_items"]["items"]]
    emit(step="commands", nodes=nodes)

    # start_command() and complete_command() call the session's "next"
    # or "error" handler with each answer.
    answers = asyncio.Queue()
    session = {
        "next": lambda iq, s: answers.put_nowait(("next", iq)),
        "error": lambda iq, s: answers.put_nowait(("error", iq)),
    }
    adhoc.start_command(server, ADD_USER, session)
    kind, iq = await answers.get()
    if args.expect_none:
        if nodes:
            raise RuntimeError("a user who is not an administrator sees commands: %s" % nodes)
        if kind != "error":
            raise RuntimeError("add-user ran for a user who is not an administrator")
        emit(step="refused", condition=iq["error"]["condition"])
        admin.disconnect()
        return
    if ADD_USER not in nodes:
        raise RuntimeError("add-user is not among the commands: %s" % nodes)
    if kind == "error":
        raise RuntimeError("add-user refused: %s" % iq["error"]["condition"])
    form = iq["command"]["form"]
    fields = form.get_fields()
    emit(step="form", vars=list(fields.keys()), status=iq["command"]["status"])

    submit = admin["xep_0004"].make_form(ftype="submit")
    submit.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/admin")
    submit.add_field(var="accountjid", value=args.new_jid)
    submit.add_field(var="password", value=args.new_password)
    submit.add_field(var="password-verify", value=args.new_password)
    session["payload"] = submit
    adhoc.complete_command(session)
    kind, iq = await answers.get()
    if kind == "error":
        raise RuntimeError("add-user failed: %s" % iq["error"]["condition"])
    if iq["command"]["status"] != "completed":
        raise RuntimeError("add-user did not complete: %s" % iq["command"]["status"])
    emit(step="completed", notes=[[t, text] for t, text in iq["command"]["notes"]])
    admin.disconnect()

    user = client(args.new_jid, args.new_password, args)
    await session_of(user, args)
    emit(step="login", jid=str(user.boundjid))
    user.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mech", required=True)
    p.add_argument("--ca-file", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--new-jid", default="")
    p.add_argument("--new-password", default="")
    p.add_argument("--expect-none", action="store_true")
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="slixmpp %(levelname)s %(name)s: %(message)s")
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(run(args), args.timeout))
    except Exception as e:
        emit(step="fatal", error="%s: %s" % (type(e).__name__, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
