#!/usr/bin/python3
"""An IM client session on slixmpp (Debian python3-slixmpp 1.8.x), driven line by line.

Logs in as --jid over STARTTLS with the SASL mechanism forced by --mech,
trusting only --ca-file (slixmpp verifies the chain and the name of the
JID's domain), and then does what the commands on stdin say, one JSON
object per line, each through slixmpp's own API:

  {"seq": 1, "cmd": "roster-get"}                       get_roster()
  {"seq": 2, "cmd": "roster-add", "jid": J, "name": N, "groups": [G]}   update_roster()
  {"seq": 3, "cmd": "roster-remove", "jid": J}          del_roster_item()
  {"seq": 4, "cmd": "subscribe", "jid": J}              client_roster.subscribe()
  {"seq": 5, "cmd": "approve", "jid": J}                client_roster[J].authorize()
  {"seq": 6, "cmd": "presence", "status": S}            send_presence()
  {"seq": 7, "cmd": "send", "to": J, "body": B, "id": I}   make_message().send()
  {"seq": 8, "cmd": "block", "jid": J}                  xep_0191 block()
  {"seq": 9, "cmd": "unblock", "jid": J}                xep_0191 unblock()
  {"seq": 10, "cmd": "blocklist"}                       xep_0191 get_blocked()
  {"seq": 11, "cmd": "vcard-set", "fn": F, "nickname": N}   xep_0054 publish_vcard()
  {"seq": 12, "cmd": "vcard-get", "jid": J}             xep_0054 get_vcard()
  {"seq": 13, "cmd": "carbons-enable"}                  xep_0280 enable()
  {"seq": 14, "cmd": "quit"}                            disconnect(), then exit 0

With --sm (XEP-0198, slixmpp's xep_0198 with resumption; it is off
otherwise):

  {"seq": 15, "cmd": "drop", "how": "close"|"silent"}   the TCP connection dies under the
                                                        stream: "close" aborts the transport
                                                        (a TCP FIN, no TLS close_notify, no
                                                        </stream:stream>); "silent" keeps a
                                                        duplicate of the socket open, so the
                                                        server sees nothing at all, as when a
                                                        phone's network goes away
  {"seq": 16, "cmd": "resume"}                          connect() again: xep_0198 resumes the
                                                        stream by its id before binding
  {"seq": 17, "cmd": "close-old"}                       closes the duplicate a "silent" drop kept

With --mam (XEP-0313, slixmpp's xep_0313):

  {"seq": 18, "cmd": "mam-page", "max": N, "after": ID, "jid": J}
                                                        retrieve() of one page of the
                                                        account's archive, or with "jid" of the
                                                        archive at J (a room's: retrieve(jid=J),
                                                        whose results must come from J), after
                                                        the archive id ID ("" for the start):
                                                        its result has "page" (the results in
                                                        order: "result_id", "queryid",
                                                        "archive", the <result/>'s message's
                                                        from, and the forwarded message's
                                                        fields), "complete", "first", "last",
                                                        "count"

With --pep (xep_0115 entity capabilities, whose <c/> goes on every
presence and whose disco#info node slixmpp answers; xep_0084 user avatar,
which adds urn:xmpp:avatar:metadata+notify to the caps):

  {"seq": 19, "cmd": "avatar-publish", "data": B64, "type": T, "width": W, "height": H}
                                                        xep_0084 publish_avatar() (data node, item
                                                        id the SHA-1) then
                                                        publish_avatar_metadata(); slixmpp sends
                                                        no publish-options. Result "id"
  {"seq": 20, "cmd": "avatar-get", "jid": J, "id": ID}  xep_0084 retrieve_avatar(): result "data"
                                                        (base64 of the bytes)
  {"seq": 21, "cmd": "avatar-delete"}                   xep_0060 delete_node() of both avatar
                                                        nodes of the account (none there: no error)

and every metadata notification (avatar_metadata_publish) is reported as

  {"event": "avatar-metadata", "from", "id", "avatar": {"id", "bytes", "type", "width", "height"}}

With --bookmarks (xep_0048, XEP-0048 bookmarks, which slixmpp keeps in
private XML storage, XEP-0049, by default; slixmpp 1.8 has no XEP-0402),
as an old client keeps them, the whole list read and written back:

  {"seq": 22, "cmd": "bookmarks-get", "method": "private"|"pep"}
                                                        xep_0048 get_bookmarks(), from private
                                                        storage or ("pep", method xep_0223) the
                                                        PEP node storage:bookmarks: result
                                                        "bookmarks" ({"jid", "name", "nick",
                                                        "autojoin"} each)
  {"seq": 23, "cmd": "bookmark-add", "jid": J, "name": N, "nick": K, "autojoin": bool}
                                                        get_bookmarks() from private storage, the
                                                        conference added (or replaced), and
                                                        set_bookmarks() of the whole list
  {"seq": 24, "cmd": "bookmark-remove", "jid": J}       the same with the conference left out

With --vcard-avatar (xep_0153, vCard-based avatars: slixmpp then puts
vcard-temp:x:update with its own vCard's hash on every available presence):

  {"seq": 25, "cmd": "vcard-avatar-set", "data": B64, "type": T}
                                                        xep_0153 set_avatar(): the vCard fetched,
                                                        its PHOTO set, published again
                                                        (xep_0054), and presence sent again.
                                                        Result "id": the SHA-1 of the bytes

With --muc (xep_0045 multi-user chat, xep_0421 occupant ids, xep_0128
for the room's muc#roominfo form; XEP-0045):

  {"seq": 26, "cmd": "muc-join", "room": R, "nick": N, "maxstanzas": M|null, "timeout": S}
                                                        xep_0045 join_muc_wait(): the join
                                                        presence with <history maxstanzas=M/>,
                                                        or maxchars 0 (no history) for null,
                                                        awaited until the subject. Result "muc":
                                                        the own presence's fields (below), or
                                                        "error": the presence error's condition
                                                        ("timeout" when xep_0045 saw neither
                                                        within S seconds)
  {"seq": 27, "cmd": "muc-configure", "room": R, "fields": {VAR: VALUE}}
                                                        xep_0045 get_room_config(), the fields set
                                                        in the form that came (set_values(); "error":
                                                        "no-field VAR" if it lacks one), and
                                                        set_room_config() of it as a submit form
                                                        (§10.1.3)
  {"seq": 28, "cmd": "muc-say", "room": R, "body": B, "id": I}
                                                        a groupchat message to the room
  {"seq": 29, "cmd": "muc-pm", "to": OCCUPANT-JID, "body": B, "id": I}
                                                        a private message (type chat, with
                                                        <x xmlns='muc#user'/>, XEP-0045 §7.5)
  {"seq": 30, "cmd": "muc-nick", "room": R, "nick": N}  presence to the new occupant JID (§7.6;
                                                        xep_0045 has no call for it)
  {"seq": 31, "cmd": "muc-kick", "room": R, "nick": N, "reason": T}
                                                        xep_0045 set_role(nick, "none", reason)
  {"seq": 32, "cmd": "muc-leave", "room": R, "nick": N} xep_0045 leave_muc()
  {"seq": 33, "cmd": "muc-info", "room": R}             xep_0030 get_info() of the room: result
                                                        "features", and "muc" with "count", the
                                                        muc#roominfo_occupants xep_0128 parsed
                                                        (-1 if absent) and "identities"

and what xep_0045 parses of room presence and messages is reported as

  {"event": "muc-presence", "from", "type", "muc": {"room", "nick", "role", "affiliation",
   "jid", "codes", "new_nick", "actor", "reason", "occupant_id"}}
                                                        each "groupchat_presence" (for rooms
                                                        joined with muc-join)
  {"event": "muc-message", "from", "to", "type", "id", "body", "delay", "stanza_ids",
   "muc": {"room", "nick", "occupant_id"}}              each groupchat message with a body, and
                                                        each private message from an occupant

With --upload (xep_0363 HTTP file upload, XEP-0363, which uploads with
aiohttp; and jabber:x:oob, XEP-0066, on messages):

  {"seq": 34, "cmd": "upload", "path": P, "name": N, "type": T}
                                                        xep_0363 upload_file(N, input_file=the
                                                        file at P, content_type=T): the service
                                                        found by disco (items of the account's
                                                        domain, the one with identity store/file
                                                        and urn:xmpp:http:upload:0), the size
                                                        checked against its max-file-size, a
                                                        slot requested and the file PUT with
                                                        the slot's headers. Result "url" (the
                                                        GET URL), "service", "max_file_size"
                                                        (from the service's disco#info form,
                                                        -1 for none); "error": xep_0363's
                                                        exception (an HTTP error, too big, no
                                                        service) in words
  {"seq": 35, "cmd": "upload-slot", "name": N, "size": S, "type": T}
                                                        xep_0363 request_slot() from the service
                                                        "upload" found: result "url" (GET), or
                                                        "error" with the condition and, for
                                                        <file-too-large/> (which slixmpp does not
                                                        parse), "app_error" and "max_file_size"
                                                        read from the error
  {"seq": 36, "cmd": "download", "url": U}              an aiohttp GET of U: result "http_status",
                                                        "size", "sha256" (hex) and
                                                        "content_type" of the response

aiohttp verifies servers with OpenSSL's default verify paths, which the
script points at --ca-file alone (SSL_CERT_FILE, and an empty SSL_CERT_DIR):
HTTPS, like XMPP, trusts only the server's certificate. "send" takes an
optional "oob": the URL, put in <x xmlns='jabber:x:oob'><url/></x> beside
the body (xep_0066's stanza), as clients share an uploaded file; message
events carry "oob", the <url/> of a jabber:x:oob element ("" for none).

The result of "vcard-get" has, besides FN and NICKNAME, "PHOTO/TYPE" and
"PHOTO/BINVAL" (base64 of the bytes slixmpp decoded) when the vCard has a
PHOTO with a BINVAL; presence events carry "photo", the hash of their
vcard-temp:x:update (XEP-0153; "" for an empty <photo/>, null for none).

Subscription requests are not answered automatically (auto_authorize is
None): only "approve" answers them. Everything observable goes to stdout
as JSON lines:

  {"event": "session", "jid": FULL-JID}
  {"event": "result", "seq": N, ...}            the command's outcome; "error" holds the
                                                stanza error condition of a refused request,
                                                "roster", "blocklist" or "vcard" what was asked
  {"event": "roster-push", "item": {"jid", "name", "subscription", "ask", "groups"}}
  {"event": "presence", "from", "to", "type", "show", "status", "photo"}
  {"event": "message", "from", "to", "type", "id", "body", "error", "delay": {"from", "stamp"}}
                                                (slixmpp reports messages with a <body/> or an <error/>)
  {"event": "carbon", "kind": "sent" or "received", "carbon_from", "carbon_to",
   "from", "to", "type", "id", "body"}         a XEP-0280 carbon (slixmpp's carbon_sent and
                                                carbon_received, raised only for one from the
                                                account's bare JID): the wrapper's from and to,
                                                and the forwarded message's fields
  {"event": "sm-enabled", "id": ID, "resume": bool}   stream management enabled
  {"event": "dropped"}                          the connection is gone ("drop")
  {"event": "resumed", "h": H}                  the stream was resumed (the server's h)
  {"event": "sm-failed"}                        <failed/> to <enable/> or <resume/>
  {"event": "fatal", "error": "..."}            the session failed; the process exits 1

Messages and carbons carry "stanza_ids": every XEP-0359 <stanza-id/> of
the (forwarded) message, as {"by", "id"}.

The process exits 0 after "quit" (or the end of stdin) and a clean close
(the server answers </stream:stream> with its own), and 1 on failure or
after --timeout seconds. slixmpp's debug log goes to
stderr.
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
import types

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def emit(**obj):
    print(json.dumps(obj), flush=True)


def utc(stamp):
    """An aware datetime as RFC 3339 in UTC."""
    return stamp.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True, help="full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mech", required=True, help="SASL mechanism to force (slixmpp's sasl_mech)")
    p.add_argument("--ca-file", required=True, help="trust only this certificate (PEM)")
    p.add_argument("--timeout", type=float, required=True, help="seconds before the process gives up")
    p.add_argument("--sm", action="store_true", help="enable stream management (XEP-0198) with resumption")
    p.add_argument("--mam", action="store_true", help="load message archive management (XEP-0313)")
    p.add_argument("--pep", action="store_true",
                   help="load entity capabilities (XEP-0115) and user avatars (XEP-0084, XEP-0163): "
                        "urn:xmpp:avatar:metadata+notify in the caps of every presence")
    p.add_argument("--bookmarks", action="store_true", help="load bookmarks (XEP-0048, in private storage)")
    p.add_argument("--vcard-avatar", action="store_true", help="load vCard-based avatars (XEP-0153)")
    p.add_argument("--muc", action="store_true",
                   help="load multi-user chat (XEP-0045), occupant ids (XEP-0421) and extended disco (XEP-0128)")
    p.add_argument("--upload", action="store_true",
                   help="load HTTP file upload (XEP-0363) and out-of-band data on messages (XEP-0066)")
    args = p.parse_args()

    if args.upload:
        # xep_0363 uploads with aiohttp, which verifies servers with
        # OpenSSL's default verify paths: only --ca-file there, as for
        # XMPP. (Read when aiohttp makes its context, on the first request.)
        os.environ["SSL_CERT_FILE"] = args.ca_file
        no_certs = tempfile.TemporaryDirectory()
        os.environ["SSL_CERT_DIR"] = no_certs.name
        import aiohttp
        from slixmpp.plugins.xep_0363.http_upload import FileUploadError

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="slixmpp %(levelname)s %(name)s: %(message)s")

    xmpp = slixmpp.ClientXMPP(args.jid, args.password, sasl_mech=args.mech)
    xmpp.register_plugin("xep_0054")  # vcard-temp
    xmpp.register_plugin("xep_0191")  # blocking command
    xmpp.register_plugin("xep_0203")  # delayed delivery
    xmpp.register_plugin("xep_0280")  # message carbons
    if args.sm:
        xmpp.register_plugin("xep_0198")  # stream management, resumption allowed
    if args.mam:
        xmpp.register_plugin("xep_0313")  # message archive management (and RSM)
    if args.pep:
        xmpp.register_plugin("xep_0115")  # entity capabilities: <c/> on presence, disco#info answered
        xmpp.register_plugin("xep_0084")  # user avatar; registers +notify for the metadata node
    if args.bookmarks:
        xmpp.register_plugin("xep_0048")  # bookmarks; storage_method xep_0049, private storage
    if args.vcard_avatar:
        xmpp.register_plugin("xep_0153")  # vCard-based avatars: x:update on presence
    if args.muc:
        xmpp.register_plugin("xep_0045")  # multi-user chat
        xmpp.register_plugin("xep_0421")  # <occupant-id/> on room presence and messages
        xmpp.register_plugin("xep_0128")  # the room's muc#roominfo form in its disco#info
        # slixmpp 1.8's join_muc_wait prints each room message's delay to
        # stdout while it waits (a leftover print()), which would break
        # the JSON lines: to stderr with it.
        import slixmpp.plugins.xep_0045.muc as muc_module
        muc_module.print = lambda *a, **kw: print(*a, file=sys.stderr, **kw)
    if args.upload:
        xmpp.register_plugin("xep_0066")  # out-of-band data: <x xmlns='jabber:x:oob'/> on messages
        xmpp.register_plugin("xep_0363")  # HTTP file upload (needs aiohttp)
        # xep_0363 finds the service with xep_0030's get_info_from_domain(),
        # which in slixmpp 1.8 hands asyncio.wait() coroutines, refused since
        # Python 3.11 ("Passing coroutines is forbidden"): wrapped in tasks
        # for it, as later slixmpp does, its discovery is left as it is.
        import slixmpp.plugins.xep_0030.disco as disco_module
        tasks = types.ModuleType("asyncio")
        tasks.__dict__.update(vars(asyncio))
        tasks.wait = lambda fs, **kw: asyncio.wait([asyncio.ensure_future(f) for f in fs], **kw)
        disco_module.asyncio = tasks
    xmpp.auto_authorize = None  # subscription requests wait for "approve"
    xmpp.auto_subscribe = False
    xmpp.ca_certs = args.ca_file
    loop = xmpp.loop
    done = loop.create_future()
    # disconnected: why the stream ended, once it has; dropping: a "drop"
    # is under way, so the end of the connection is expected; kept: the
    # duplicate socket a silent drop keeps open.
    state = {"disconnected": None, "dropping": False, "dropped": False, "kept": None}

    def finish(ok, error=None):
        if done.done():
            return
        if error is not None:
            emit(event="fatal", error=error)
        done.set_result(ok)

    # slixmpp 1.8 knows only the tls-unique channel binding and hands it to
    # SCRAM whenever the socket is TLS, even on TLS 1.3 where RFC 9266 says
    # it is undefined; a plain SCRAM then sends gs2 flag 'y', which a server
    # that offered -PLUS must reject (RFC 5802 §6). Hidden, it sends 'n'.
    mechanisms = xmpp["feature_mechanisms"]
    credentials = mechanisms.sasl_callback

    def without_channel_binding(required, optional):
        values = credentials(required, optional)
        if "channel_binding" in values:
            values["channel_binding"] = None
        return values
    mechanisms.sasl_callback = without_channel_binding

    def conferences(storage):
        return [{"jid": str(c["jid"]), "name": c["name"] or "", "nick": c["nick"] or "",
                 "autojoin": bool(c["autojoin"])} for c in storage["conferences"]]

    async def private_bookmarks():
        """The bookmarks storage element in private storage."""
        iq = await xmpp.plugin["xep_0048"].get_bookmarks()
        return iq["private"]["bookmarks"]

    async def store_bookmarks(old, keep, add=None):
        """Writes the whole list back to private storage: old's conferences
        that keep accepts, then add (a dict), and old's URLs."""
        new = xmpp.plugin["xep_0048"].stanza.Bookmarks()
        for c in old["conferences"]:
            if keep(c):
                new.add_conference(c["jid"], c["nick"], name=c["name"], autojoin=c["autojoin"],
                                   password=c["password"] or None)
        if add is not None:
            new.add_conference(add["jid"], add["nick"], name=add["name"], autojoin=add["autojoin"])
        for u in old["urls"]:
            new.add_url(u["url"], name=u["name"])
        await xmpp.plugin["xep_0048"].set_bookmarks(new)

    def roster_item(jid, values):
        return {"jid": str(jid), "name": values.get("name") or "",
                "subscription": values.get("subscription") or "none",
                "ask": values.get("ask") or "", "groups": sorted(values.get("groups") or [])}

    async def run(cmd):
        name = cmd["cmd"]
        if name == "roster-get":
            # No local cache: ask for the whole roster (RFC 6121 §2.6.2,
            # an empty 'ver'), not for the changes since the last push.
            xmpp.client_roster.version = ""
            iq = await xmpp.get_roster()
            return {"roster": [roster_item(j, v) for j, v in iq["roster"]["items"].items()]}
        if name == "roster-add":
            await xmpp.update_roster(cmd["jid"], name=cmd["name"], groups=cmd["groups"])
        elif name == "roster-remove":
            await xmpp.del_roster_item(cmd["jid"])
        elif name == "subscribe":
            xmpp.client_roster.subscribe(cmd["jid"])
        elif name == "approve":
            xmpp.client_roster[cmd["jid"]].authorize()
        elif name == "presence":
            xmpp.send_presence(pstatus=cmd["status"])
        elif name == "send":
            msg = xmpp.make_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
            msg["id"] = cmd["id"]
            if cmd.get("oob"):
                msg["oob"]["url"] = cmd["oob"]  # xep_0066's stanza (--upload)
            msg.send()
        elif name == "block":
            await xmpp.plugin["xep_0191"].block([cmd["jid"]])
        elif name == "unblock":
            await xmpp.plugin["xep_0191"].unblock([cmd["jid"]])
        elif name == "blocklist":
            iq = await xmpp.plugin["xep_0191"].get_blocked()
            return {"blocklist": sorted(str(j) for j in iq["blocklist"]["items"])}
        elif name == "vcard-set":
            vcard = xmpp.plugin["xep_0054"].stanza.VCardTemp()
            vcard["FN"] = cmd["fn"]
            vcard["NICKNAME"] = cmd["nickname"]
            await xmpp.plugin["xep_0054"].publish_vcard(vcard)
        elif name == "vcard-get":
            iq = await xmpp.plugin["xep_0054"].get_vcard(cmd["jid"])
            vcard = iq["vcard_temp"]
            # slixmpp reads NICKNAME as the comma-separated list vCard
            # makes of it (RFC 2426 §3.1.3).
            out = {"FN": vcard["FN"], "NICKNAME": ",".join(vcard["NICKNAME"] or [])}
            if vcard.xml.find("{vcard-temp}PHOTO/{vcard-temp}BINVAL") is not None:
                out["PHOTO/TYPE"] = vcard["PHOTO"]["TYPE"] or ""
                out["PHOTO/BINVAL"] = base64.b64encode(vcard["PHOTO"]["BINVAL"]).decode()
            return {"vcard": out}
        elif name == "carbons-enable":
            await xmpp.plugin["xep_0280"].enable()
        elif name == "drop":
            # The transport goes away without a word: abort() writes
            # nothing (no TLS close_notify, no </stream:stream>). For
            # "silent" the kernel socket outlives it through a duplicate,
            # so not even a FIN reaches the server.
            sock = xmpp.transport.get_extra_info("socket")
            if cmd["how"] == "silent":
                state["kept"] = socket.socket(fileno=os.dup(sock.fileno()))
            elif cmd["how"] != "close":
                raise ValueError("unknown drop %r" % cmd["how"])
            state["dropping"] = True
            xmpp.transport.abort()
        elif name == "resume":
            if not state["dropped"]:
                raise ValueError("resume while connected")
            state["dropped"] = False
            state["disconnected"] = None
            xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True)
        elif name == "close-old":
            state["kept"].close()
            state["kept"] = None
        elif name == "mam-page":
            rsm = {"max": cmd["max"]}
            if cmd["after"]:
                rsm["after"] = cmd["after"]
            iq = await xmpp.plugin["xep_0313"].retrieve(jid=slixmpp.JID(cmd["jid"]) if cmd.get("jid") else None,
                                                        rsm=rsm)
            fin = iq["mam_fin"]
            page = []
            for res in iq["mam"]["results"]:
                r = res["mam_result"]
                inner = r["forwarded"]["stanza"]
                page.append(dict(result_id=r["id"], queryid=r["queryid"], archive=str(res["from"]),
                                 **message_fields(inner)))
            rset = fin["rsm"]
            return {"page": page, "complete": fin.xml.get("complete") in ("true", "1"),
                    "first": rset["first"], "last": rset["last"], "count": int(rset["count"] or -1)}
        elif name == "avatar-publish":
            # As slixmpp's API has it: the data item (id the SHA-1 of the
            # bytes), then the metadata; no publish-options, so the nodes
            # get the server's default configuration.
            data = base64.b64decode(cmd["data"])
            avatar = xmpp.plugin["xep_0084"]
            sha = avatar.generate_id(data)
            await avatar.publish_avatar(data)
            await avatar.publish_avatar_metadata([{"id": sha, "type": cmd["type"], "bytes": len(data),
                                                   "width": str(cmd["width"]), "height": str(cmd["height"])}])
            return {"id": sha}
        elif name == "avatar-delete":
            # Both avatar nodes of the account go (xep_0060 delete_node), so
            # that the next publish creates them with the server's defaults;
            # a node that is not there is no error.
            for node in ("urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata"):
                try:
                    await xmpp.plugin["xep_0060"].delete_node(None, node)
                except IqError as e:
                    if e.iq["error"]["condition"] != "item-not-found":
                        raise
        elif name == "avatar-get":
            iq = await xmpp.plugin["xep_0084"].retrieve_avatar(cmd["jid"], cmd["id"])
            el = iq.xml.find(".//{urn:xmpp:avatar:data}data")
            if el is None or not el.text:
                return {"error": "no-data"}
            return {"data": base64.b64encode(base64.b64decode(el.text)).decode()}
        elif name == "bookmarks-get":
            if cmd["method"] == "pep":
                iq = await xmpp.plugin["xep_0048"].get_bookmarks(method="xep_0223")
                out = []
                for item in iq["pubsub"]["items"]:
                    out += conferences(item["bookmarks"])
                return {"bookmarks": out}
            if cmd["method"] != "private":
                raise ValueError("unknown bookmarks method %r" % cmd["method"])
            return {"bookmarks": conferences(await private_bookmarks())}
        elif name == "bookmark-add":
            old = await private_bookmarks()
            await store_bookmarks(old, lambda c: str(c["jid"]) != cmd["jid"], cmd)
        elif name == "bookmark-remove":
            old = await private_bookmarks()
            await store_bookmarks(old, lambda c: str(c["jid"]) != cmd["jid"])
        elif name == "vcard-avatar-set":
            data = base64.b64decode(cmd["data"])
            await xmpp.plugin["xep_0153"].set_avatar(avatar=data, mtype=cmd["type"])
            return {"id": hashlib.sha1(data).hexdigest()}
        elif name == "muc-join":
            muc = xmpp.plugin["xep_0045"]
            history = {"maxchars": 0} if cmd.get("maxstanzas") is None else {"maxstanzas": cmd["maxstanzas"]}
            try:
                pres, _subject, _occupants, _history = await muc.join_muc_wait(
                    slixmpp.JID(cmd["room"]), cmd["nick"], timeout=cmd.get("timeout") or args.timeout, **history)
            except slixmpp.exceptions.PresenceError as e:
                return {"error": e.condition}
            except asyncio.TimeoutError:
                # Neither its own presence nor a presence error xep_0045
                # took for one (it needs <x xmlns='muc'/> in the error).
                return {"error": "timeout"}
            return {"muc": muc_presence_fields(pres)}
        elif name == "muc-configure":
            muc = xmpp.plugin["xep_0045"]
            form = await muc.get_room_config(slixmpp.JID(cmd["room"]))
            for var in cmd["fields"]:
                if var not in form.get_fields():
                    return {"error": "no-field " + var}
            form.set_values(cmd["fields"])
            await muc.set_room_config(slixmpp.JID(cmd["room"]), form)
        elif name == "muc-say":
            msg = xmpp.make_message(mto=cmd["room"], mbody=cmd["body"], mtype="groupchat")
            msg["id"] = cmd["id"]
            msg.send()
        elif name == "muc-pm":
            msg = xmpp.make_message(mto=cmd["to"], mbody=cmd["body"], mtype="chat")
            msg["id"] = cmd["id"]
            msg.enable("muc")  # <x xmlns='http://jabber.org/protocol/muc#user'/>
            msg.send()
        elif name == "muc-nick":
            xmpp.send_presence(pto="%s/%s" % (cmd["room"], cmd["nick"]))
        elif name == "muc-kick":
            await xmpp.plugin["xep_0045"].set_role(slixmpp.JID(cmd["room"]), cmd["nick"], "none",
                                                   reason=cmd.get("reason", ""))
        elif name == "muc-leave":
            xmpp.plugin["xep_0045"].leave_muc(slixmpp.JID(cmd["room"]), cmd["nick"])
        elif name == "muc-info":
            iq = await xmpp.plugin["xep_0030"].get_info(jid=cmd["room"], local=False, cached=False)
            info = iq["disco_info"]
            values = info["form"].get_values() if info.get_plugin("form", check=True) is not None else {}
            count = values.get("muc#roominfo_occupants")
            return {"features": sorted(info["features"]),
                    "muc": {"count": int(count) if count not in (None, "") else -1,
                            "identities": ["%s/%s" % (i[0], i[1]) for i in info["identities"]]}}
        elif name == "upload":
            upload = xmpp.plugin["xep_0363"]
            try:
                with open(cmd["path"], "rb") as f:
                    url = await upload.upload_file(cmd["name"], input_file=f, content_type=cmd["type"])
            except FileUploadError as e:
                return {"error": "%s: %s" % (type(e).__name__, e)}
            size = upload.max_file_size
            return {"url": url, "service": str(upload.upload_service),
                    "max_file_size": int(size) if size != float("inf") else -1}
        elif name == "upload-slot":
            upload = xmpp.plugin["xep_0363"]
            if upload.upload_service is None:
                return {"error": "no service: upload first"}
            try:
                iq = await upload.request_slot(upload.upload_service, cmd["name"], cmd["size"], cmd["type"])
            except IqError as e:
                out = {"error": e.iq["error"]["condition"]}
                ns = "{urn:xmpp:http:upload:0}"
                big = e.iq.xml.find("{jabber:client}error/" + ns + "file-too-large")
                if big is not None:
                    out["app_error"] = "file-too-large"
                    out["max_file_size"] = int(big.findtext(ns + "max-file-size") or -1)
                return out
            return {"url": iq["http_upload_slot"]["get"]["url"]}
        elif name == "download":
            # As a client fetches a shared file: a GET, trusting --ca-file.
            context = ssl.create_default_context(cafile=args.ca_file)
            async with aiohttp.ClientSession() as session:
                async with session.get(cmd["url"], ssl=context) as response:
                    data = await response.read()
                    return {"http_status": response.status, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "content_type": response.headers.get("Content-Type", "")}
        elif name == "quit":
            finish(True)
        else:
            raise ValueError("unknown command %r" % name)
        return {}

    async def command(line):
        try:
            cmd = json.loads(line)
            try:
                out = await run(cmd)
            except IqError as e:
                out = {"error": e.iq["error"]["condition"]}
            emit(event="result", seq=cmd["seq"], **out)
        except IqTimeout:
            finish(False, "no answer to %s" % line.strip())
        except Exception as e:  # noqa: BLE001
            logging.exception("command %s", line.strip())
            finish(False, "command %s: %r" % (line.strip(), e))

    def read_commands():
        # stdin is read on its own thread; each line runs on the event loop.
        for line in sys.stdin:
            if line.strip():
                asyncio.run_coroutine_threadsafe(command(line), loop)
        loop.call_soon_threadsafe(finish, True)  # end of input: quit

    def session_start(_):
        emit(event="session", jid=str(xmpp.boundjid))
        # Once: a resumption that fails binds a new session, and starts it
        # again.
        if not state.get("reading"):
            state["reading"] = True
            threading.Thread(target=read_commands, daemon=True).start()

    def sm_enabled(el):
        emit(event="sm-enabled", id=el.xml.get("id", ""), resume=el.xml.get("resume") in ("true", "1"))

    def session_resumed(_):
        emit(event="resumed", h=int(xmpp.plugin["xep_0198"].last_ack))

    def roster_update(iq):
        if iq["type"] != "set":
            return  # the answer to get_roster(), reported as its result
        for jid, values in iq["roster"]["items"].items():
            emit(event="roster-push", item=roster_item(jid, values))

    def presence(pres):
        # slixmpp reports an available presence's <show/> as its type.
        ptype = "available" if pres["type"] in pres.showtypes else pres["type"]
        # The raw <x xmlns='vcard-temp:x:update'/> (XEP-0153 §3.2).
        photo = pres.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
        emit(event="presence", **{"from": str(pres["from"]), "to": str(pres["to"]), "type": ptype,
                                  "show": pres["show"], "status": pres["status"],
                                  "photo": None if photo is None else (photo.text or "")})

    def message_fields(msg):
        return {"from": str(msg["from"]), "to": str(msg["to"]), "type": msg["type"],
                "id": msg["id"], "body": msg["body"],
                "oob": msg.xml.findtext("{jabber:x:oob}x/{jabber:x:oob}url") or "",
                "stanza_ids": [{"by": el.get("by", ""), "id": el.get("id", "")}
                               for el in msg.xml.findall("{urn:xmpp:sid:0}stanza-id")]}

    def message(msg):
        if msg.xml.find("{urn:xmpp:mam:2}result") is not None:
            return  # a MAM result: reported in its query's result
        out = message_fields(msg)
        if msg["type"] == "error":
            out["error"] = msg["error"]["condition"]
        if msg.xml.find("{urn:xmpp:delay}delay") is not None:
            delay = msg["delay"]
            out["delay"] = {"from": str(delay["from"] or ""),
                            "stamp": utc(delay["stamp"]) if delay["stamp"] else ""}
        emit(event="message", **out)

    def carbon(kind):
        def handler(msg):
            inner = msg["carbon_" + kind]
            emit(event="carbon", kind=kind, carbon_from=str(msg["from"]), carbon_to=str(msg["to"]),
                 **message_fields(inner))
        return handler

    def avatar_metadata(msg):
        # slixmpp's xep_0084 maps the metadata node's events to
        # avatar_metadata_publish (one per item).
        item = msg["pubsub_event"]["items"]["item"]
        for info in item.xml.findall("{urn:xmpp:avatar:metadata}metadata/{urn:xmpp:avatar:metadata}info"):
            emit(event="avatar-metadata", **{"from": str(msg["from"]), "id": item["id"], "avatar": {
                "id": info.get("id", ""), "bytes": int(info.get("bytes") or -1), "type": info.get("type", ""),
                "width": int(info.get("width") or -1), "height": int(info.get("height") or -1)}})

    def disconnected(reason):
        state["disconnected"] = reason
        if state["dropping"]:
            state["dropping"] = False
            state["dropped"] = True
            emit(event="dropped")
            return
        finish(False, "disconnected: %s" % reason)

    def message_with_body(msg):
        # slixmpp raises "message" for any message with a <body/> and
        # "message_error" for any with an <error/>: a bounce that carries
        # the original body (as ejabberd's do) raises both; report it once.
        if msg["type"] != "error":
            message(msg)

    def muc_presence_fields(pres):
        muc = pres["muc"]
        item = pres.xml.find("{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item")
        actor = item.find("{http://jabber.org/protocol/muc#user}actor") if item is not None else None
        return {"room": muc["room"], "nick": muc["nick"], "role": muc["role"], "affiliation": muc["affiliation"],
                "jid": str(muc["jid"] or ""), "codes": sorted(muc["status_codes"]),
                "new_nick": muc["item"]["nick"] if item is not None else "",
                "actor": (actor.get("nick") or actor.get("jid") or "") if actor is not None else "",
                "reason": muc["item"]["reason"] if item is not None else "",
                "occupant_id": pres["occupant-id"]["id"]}

    def muc_presence(pres):
        ptype = "available" if pres["type"] in pres.showtypes else pres["type"]
        emit(event="muc-presence", **{"from": str(pres["from"]), "type": ptype, "muc": muc_presence_fields(pres)})

    def muc_message(msg):
        private = msg["type"] == "chat" and msg.xml.find("{http://jabber.org/protocol/muc#user}x") is not None
        if msg["type"] != "groupchat" and not private:
            return
        out = message_fields(msg)
        if msg.xml.find("{urn:xmpp:delay}delay") is not None:
            delay = msg["delay"]
            out["delay"] = {"from": str(delay["from"] or ""),
                            "stamp": utc(delay["stamp"]) if delay["stamp"] else ""}
        out["muc"] = {"room": msg["from"].bare, "nick": msg["from"].resource,
                      "occupant_id": msg["occupant-id"]["id"]}
        emit(event="muc-message", **out)

    if args.muc:
        xmpp.add_event_handler("groupchat_presence", muc_presence)
        xmpp.add_event_handler("message", muc_message)  # any message with a body, groupchat or not

    xmpp.add_event_handler("session_start", session_start)
    xmpp.add_event_handler("avatar_metadata_publish", avatar_metadata)
    xmpp.add_event_handler("roster_update", roster_update)
    xmpp.add_event_handler("presence", presence)
    xmpp.add_event_handler("message", message_with_body)
    xmpp.add_event_handler("message_error", message)
    xmpp.add_event_handler("carbon_received", carbon("received"))
    xmpp.add_event_handler("carbon_sent", carbon("sent"))
    xmpp.add_event_handler("failed_all_auth", lambda _: finish(False, "authentication failed"))
    xmpp.add_event_handler("no_auth", lambda _: finish(False, "no usable SASL mechanism"))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: finish(False, "TLS certificate rejected: %s" % e))
    xmpp.add_event_handler("connection_failed", lambda e: finish(False, "connection failed: %s" % e))
    xmpp.add_event_handler("stream_error", lambda e: finish(False, "stream error: %s" % e))
    xmpp.add_event_handler("disconnected", disconnected)
    xmpp.add_event_handler("sm_enabled", sm_enabled)
    xmpp.add_event_handler("session_resumed", session_resumed)
    xmpp.add_event_handler("sm_failed", lambda _: emit(event="sm-failed"))

    loop.call_later(args.timeout, lambda: finish(False, "timeout after %gs" % args.timeout))
    xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=True)
    ok = loop.run_until_complete(done)
    if ok:
        # Flushes the send queue, sends </stream:stream> and waits (at most
        # 5s) for the server's, after which slixmpp closes the connection
        # anyway; only the server's </stream:stream> is a clean close.
        loop.run_until_complete(xmpp.disconnect(wait=5))
        if state["disconnected"] != "End of stream":
            emit(event="fatal", error="the server did not close its stream within 5s of ours (%s)" % state["disconnected"])
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
