#!/usr/bin/python3
"""Service administration (XEP-0133) from nbxmpp (Debian python3-nbxmpp), as Gajim does it.

The same steps as slixmpp_adhoc.py, with the same arguments and output,
through nbxmpp's AdHoc module, which Gajim's "Execute Command" window
drives: request_command_list() of the server, execute_command() of
add-user, whose form Gajim shows (extend_form) and sends back filled in
with type 'submit', with the action the answer allows; then a second
client logs in as the new account. nbxmpp checks what the server answers
(status, actions, notes, session id) and fails on anything XEP-0050 does
not allow.
"""

import argparse
import json
import logging
import sys

import gi
gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import AdHocAction, ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.errors import StanzaError  # noqa: E402
from nbxmpp.modules.dataforms import extend_form  # noqa: E402
from nbxmpp.protocol import JID  # noqa: E402

ADD_USER = "http://jabber.org/protocol/admin#add-user"


def emit(**kw):
    print(json.dumps(kw), flush=True)


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
                        format="nbxmpp %(levelname)s %(name)s: %(message)s")
    loop = GLib.MainLoop()
    state = {"ok": None}

    def finish(ok, error=None):
        if state["ok"] is not None:
            return
        if error is not None:
            emit(step="fatal", error=error)
        state["ok"] = ok
        loop.quit()

    def guarded(fn):
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except Exception as e:  # noqa: BLE001
                logging.exception("in %s", fn.__name__)
                finish(False, "%s: %r" % (fn.__name__, e))
        return wrapper

    def client(jid_text, password, on_connected):
        jid = JID.from_string(jid_text)
        c = Client(log_context="nbxmpp-adhoc")
        c.set_username(jid.localpart)
        c.set_domain(jid.domain)
        c.set_resource(jid.resource or "nbxmpp")
        c.set_password(password)
        c.set_custom_host("%s:%d" % (args.host, args.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        c.set_mechs({args.mech})
        c.set_accepted_certificates([Gio.TlsCertificate.new_from_file(args.ca_file)])
        c.subscribe("connected", guarded(lambda _c, _s: on_connected(c)))
        c.subscribe("connection-failed", lambda _c, _s: finish(False, "connection failed: %s" % (c.get_error(),)))
        c.connect()
        return c

    def then(task, fn):
        @guarded
        def done(task):
            fn(task.finish())
        task.add_done_callback(done, weak=False)

    def new_account_logged_in(c):
        emit(step="login", jid=str(c.get_bound_jid()))
        c.disconnect()
        finish(True)

    @guarded
    def admin_connected(c):
        adhoc = c.get_module("AdHoc")
        server = JID.from_string(c.get_bound_jid().domain)

        def listed(commands):
            nodes = [cmd.node for cmd in commands]
            emit(step="commands", nodes=nodes)
            if args.expect_none:
                if nodes:
                    raise RuntimeError("a user who is not an administrator sees commands: %s" % nodes)
                # Gajim offers no command here; run add-user as a script would.
                from nbxmpp.structs import AdHocCommand
                refused(adhoc.execute_command(AdHocCommand(jid=server, node=ADD_USER, name=None)))
                return
            cmd = next((cmd for cmd in commands if cmd.node == ADD_USER), None)
            if cmd is None:
                raise RuntimeError("add-user is not among the commands: %s" % nodes)
            then(adhoc.execute_command(cmd), form)

        def refused(task):
            @guarded
            def done(task):
                try:
                    task.finish()
                except StanzaError as e:
                    emit(step="refused", condition=e.condition)
                    c.disconnect()
                    finish(True)
                    return
                raise RuntimeError("add-user ran for a user who is not an administrator")
            task.add_done_callback(done, weak=False)

        def form(cmd):
            data = extend_form(node=cmd.data)
            emit(step="form", vars=[f.var for f in data.iter_fields()], status=cmd.status.value)
            # As Gajim's form widget: the fields filled in, the form sent
            # back whole as type 'submit', with the default action.
            data["accountjid"].value = args.new_jid
            data["password"].value = args.new_password
            data["password-verify"].value = args.new_password
            data.type_ = "submit"
            action = cmd.default or AdHocAction.COMPLETE
            then(adhoc.execute_command(cmd, action=action, dataform=data), completed)

        def completed(cmd):
            if not cmd.is_completed:
                raise RuntimeError("add-user did not complete: %s" % cmd.status)
            emit(step="completed", notes=[[n.type.value, n.text] for n in cmd.notes])
            c.disconnect()
            client(args.new_jid, args.new_password, new_account_logged_in)

        then(adhoc.request_command_list(jid=server), listed)

    client(args.jid, args.password, admin_connected)
    GLib.timeout_add(int(args.timeout * 1000), lambda: finish(False, "timeout after %gs" % args.timeout))
    loop.run()
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
