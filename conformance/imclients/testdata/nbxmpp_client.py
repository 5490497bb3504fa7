#!/usr/bin/python3
"""An IM client session on nbxmpp (Gajim's library; Debian python3-nbxmpp 4.2.x), driven line by line.

Same commands, events and exit status as slixmpp_client.py. It logs in as
--jid over STARTTLS with the SASL mechanism forced by --mech (set_mechs);
--ca-file pins the server certificate: nbxmpp (through GIO) verifies the
chain and the name of the JID's domain as usual and forgives only "unknown
CA", and only for exactly that certificate (set_accepted_certificates,
what Gajim stores when a user trusts a certificate). Each command goes
through nbxmpp's own modules:

  roster-get     Roster.request_roster()
  roster-add     Roster.set_item()
  roster-remove  Roster.delete_item()
  subscribe      BasePresence.subscribe()
  approve        BasePresence.subscribed()
  presence       BasePresence.send()
  send           Client.send_stanza(Message(...))   (nbxmpp has no higher-level chat API;
                                                     Gajim builds the stanza the same way)
  block          Blocking.block()
  unblock        Blocking.unblock()
  blocklist      Blocking.request_blocking_list()
  vcard-set      VCardTemp.set_vcard()
  vcard-get      VCardTemp.request_vcard(): FN, NICKNAME, and PHOTO/TYPE and
                 PHOTO/BINVAL (base64) when there is a PHOTO with a BINVAL
  carbons-enable Client.send_stanza(Iq(set) with <enable xmlns='urn:xmpp:carbons:2'/>)
                                                    (nbxmpp has no carbons call; Gajim sends
                                                     the same IQ itself, XEP-0280 §4)
  avatar-publish UserAvatar.set_avatar(Avatar with add_image_source(), public): Gajim's
                 publishing, publish-options and all (--pep); result "id": the SHA-1
  avatar-get     UserAvatar.request_avatar_data(id, jid): result "data" (base64), which
                 nbxmpp has checked against the SHA-1 id
  quit           Client.disconnect(), then exit 0 once the server has closed too
  drop           Client.disconnect(immediate=True): the TCP connection is shut down
                 under the stream (a FIN; no </stream:stream>, and nbxmpp keeps its
                 stream management state); only "how": "close" (nbxmpp shuts the
                 socket down itself, so a "silent" drop is refused)
  resume         Client.connect() again: nbxmpp resumes the stream (XEP-0198) when
                 it can, as Gajim does after a network change
  mam-page       MAM.make_query(jid, max_, after) on the account's archive (jid None) or,
                 with "jid", on the archive at that JID, as Gajim queries a room's
                 (make_query(room JID, ...), paging with after = the last page's RSM
                 last), with a queryid of its own; the results nbxmpp unwraps for that
                 queryid make the result's "page", each with "archive": the JID nbxmpp
                 took the result from (MAMData.archive, which Gajim checks against the
                 archive it asked)
  disco-features {"jid"}: Discovery.disco_info(jid): result "features", all of them
  bookmarks-get  request_bookmarks() of the bookmarks module Gajim picks (below): result
                 "module" (NativeBookmarks, PEPBookmarks or PrivateBookmarks), "features"
                 (the bookmark features of the account's disco#info) and "bookmarks"
                 ({"jid", "name", "nick", "autojoin"} each)
  bookmark-add   {"jid", "name", "nick", "autojoin"}: as Gajim adds a bookmark. Native:
                 the one item published to urn:xmpp:bookmarks:1 (item id the room's JID)
                 with NativeBookmarks' publish-options and force_node_options, the
                 request NativeBookmarks.store_bookmarks() sends, here awaited through
                 PubSub.publish() (store_bookmarks() does not wait for the answer).
                 Otherwise: the whole list, fetched, with the bookmark added or
                 replaced, stored again by the module (PEP: the same awaited way)
  bookmark-remove {"jid"}: native, NativeBookmarks.retract_bookmark(); otherwise the
                 list without it, stored as for bookmark-add

With --pep the session has entity capabilities as Gajim sets them up
(EntityCaps.set_caps(): nbxmpp answers disco#info for its node, and every
"presence" carries <c/>), with urn:xmpp:avatar:metadata+notify, and each
avatar metadata notification UserAvatar parsed is reported as the event
"avatar-metadata" of slixmpp_client.py.

With --bookmarks the same entity capabilities have
urn:xmpp:bookmarks:1+notify (as Gajim's do), and each XEP-0402
notification NativeBookmarks parsed is reported as

  {"event": "bookmark-event", "from", "id", "retracted": bool, "bookmark":
   {"jid", "name", "nick", "autojoin"} or null}

The bookmarks module is Gajim's choice (gajim/common/modules/bookmarks.py,
_bookmark_module) from the account's disco#info, asked once: private
storage (XEP-0049) without pubsub#publish-options; native (XEP-0402) with
urn:xmpp:bookmarks:1#compat-pep and pubsub#config-node-max; the PEP node
storage:bookmarks with urn:xmpp:bookmarks-conversion:0; private storage
otherwise.

With --muc, group chat (XEP-0045) as Gajim does it on nbxmpp's MUC module
(whose handlers parse room presence and messages into properties), with
the commands of slixmpp_client.py:

  muc-join     BasePresence.send() to the occupant JID with muc_history (maxstanzas, or
               maxchars 0 for none), as Gajim joins; the result (its own presence,
               "muc") once the room's subject has come after its own presence (110),
               or "error": a presence error's condition ("timeout" after "timeout" s)
  muc-configure MUC.request_config(), the "fields" set in the form that came (each
               field's value, as Gajim's configuration dialog sets it; "error": "no-field
               VAR" if the form lacks one), and MUC.set_config() of it, as Gajim
               configures a new room
  muc-say      Client.send_stanza(Message(type groupchat))
  muc-pm       Client.send_stanza(Message(type chat) with <x xmlns='muc#user'/>), as Gajim
  muc-nick     BasePresence.send() to the new occupant JID (Gajim's change_nick)
  muc-kick     MUC.set_role(nick, "none", reason)
  muc-leave    BasePresence.send(typ unavailable) to the occupant JID
  muc-info     MUC.request_info() of the room (no vCard): "features", and "muc":
               "count" (DiscoInfo.muc_users, -1 if absent) and "identities"

and the events muc-presence and muc-message of slixmpp_client.py, from
the properties the MUC module parsed (muc_user, muc_status_codes,
occupant_id; muc_private_message).

HTTP file upload (XEP-0363) as Gajim shares a file, with the commands of
slixmpp_client.py (--upload only documents the intent):

  upload       the service as Gajim finds it (Discovery.disco_items() of the account's
               domain, then disco_info() of each item: the first with
               urn:xmpp:http:upload:0, its max-file-size as DiscoInfo parsed it), a slot
               from HTTPUpload.request_slot(), and the file PUT as Gajim's HTTPUpload
               does: an nbxmpp.http request (Soup 3) with the body from the file, the
               slot's headers and its content type; result "url" (GET), "service",
               "max_file_size" (-1 for none), or "error": a stanza error's condition or
               the HTTP request's error
  upload-slot  HTTPUpload.request_slot() from the service "upload" found: "url", or
               "error" with the condition and, from the HTTPUploadStanzaError nbxmpp
               raised, "app_error" (its app_condition) and "max_file_size"
               (get_max_file_size())
  download     an nbxmpp.http GET of the URL, as Gajim fetches a shared file (in
               memory: "http_status", "size", "sha256", "content_type")

Both HTTPS requests trust what the XMPP connection does: GIO's verification,
"unknown CA" forgiven for exactly the --ca-file certificate (the Soup
message's accept-certificate, which Gajim answers from its stored
certificates). "send" takes "oob", put in <x xmlns='jabber:x:oob'><url/></x>
as Gajim does for an uploaded file; message events carry "oob": the URL
nbxmpp's OOB module parsed ("" for none).

Presence events carry "photo": the vcard-temp:x:update hash VCardAvatar
parsed (XEP-0153), "" for an empty <photo/>, null for none.

nbxmpp enables stream management with resumption by itself whenever the
server offers it (--sm only documents the intent). The extra events are
those of slixmpp_client.py: sm-enabled, dropped, resumed, sm-failed; and
messages and carbons carry "stanza_ids".

Events are read from the properties nbxmpp's modules parse (roster pushes,
presence, messages with their errors and XEP-0203 delays, XEP-0280
carbons, which nbxmpp unwraps itself and reports with the forwarded
message's addresses, after checking that the carbon came from the
account's bare JID: so carbon_from is empty here). nbxmpp never answers
a subscription request by itself. Its debug log goes to stderr.
"""

import argparse
import base64
import datetime
import hashlib
import json
import logging
import os
import sys
import threading
from pathlib import Path

import gi
gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import AvatarState, ConnectionProtocol, ConnectionType, StreamState  # noqa: E402
from nbxmpp.errors import HTTPUploadStanzaError, StanzaError  # noqa: E402
from nbxmpp.http import HTTPSession  # noqa: E402
from nbxmpp.modules.bookmarks.native_bookmarks import BOOKMARK_OPTIONS as NATIVE_OPTIONS  # noqa: E402
from nbxmpp.modules.bookmarks.pep_bookmarks import BOOKMARK_OPTIONS as PEP_OPTIONS  # noqa: E402
from nbxmpp.modules.bookmarks.util import build_conference_node, build_storage_node  # noqa: E402
from nbxmpp.modules.delay import parse_delay  # noqa: E402
from nbxmpp.modules.user_avatar import Avatar  # noqa: E402
from nbxmpp.modules.vcard_temp import VCard  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import JID, Iq, Message, isResultNode  # noqa: E402
from nbxmpp.structs import BookmarkData, DiscoIdentity, StanzaHandler  # noqa: E402


def emit(**obj):
    print(json.dumps(obj), flush=True)


def bookmark_dict(b):
    return {"jid": str(b.jid), "name": b.name or "", "nick": b.nick or "", "autojoin": bool(b.autojoin)}


# The bookmark features of an account's disco#info Gajim looks at.
BOOKMARK_FEATURES = [Namespace.PUBSUB_PUBLISH_OPTIONS, Namespace.PUBSUB_NODE_MAX, Namespace.BOOKMARKS_COMPAT,
                     Namespace.BOOKMARKS_COMPAT_PEP, Namespace.BOOKMARK_CONVERSION]


def bookmark_module(features):
    """Gajim's _bookmark_module(), from the account's features."""
    if Namespace.PUBSUB_PUBLISH_OPTIONS not in features:
        return "PrivateBookmarks"
    if Namespace.BOOKMARKS_COMPAT_PEP in features and Namespace.PUBSUB_NODE_MAX in features:
        return "NativeBookmarks"
    if Namespace.BOOKMARK_CONVERSION in features:
        return "PEPBookmarks"
    return "PrivateBookmarks"


def roster_item(item):
    return {"jid": str(item.jid), "name": item.name or "", "subscription": item.subscription or "none",
            "ask": item.ask or "", "groups": sorted(item.groups)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True, help="full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mech", required=True, help="the only SASL mechanism nbxmpp may use")
    p.add_argument("--ca-file", required=True, help="accept only this certificate (PEM)")
    p.add_argument("--timeout", type=float, required=True, help="seconds before the process gives up")
    p.add_argument("--sm", action="store_true", help="stream management (nbxmpp's default whenever offered)")
    p.add_argument("--mam", action="store_true", help="message archive management (nbxmpp's MAM module is always there)")
    p.add_argument("--pep", action="store_true",
                   help="entity capabilities as Gajim sets them (EntityCaps.set_caps, <c/> on every presence, "
                        "disco#info answered by nbxmpp) with urn:xmpp:avatar:metadata+notify")
    p.add_argument("--bookmarks", action="store_true",
                   help="the same entity capabilities with urn:xmpp:bookmarks:1+notify")
    p.add_argument("--muc", action="store_true", help="report room presence and messages (XEP-0045)")
    p.add_argument("--upload", action="store_true", help="HTTP file upload (nbxmpp's HTTPUpload module is always there)")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="nbxmpp %(levelname)s %(name)s: %(message)s")

    jid = JID.from_string(args.jid)
    loop = GLib.MainLoop()
    # dropping: a "drop" is under way; mam: queryid -> the results so far.
    # bookmarks: (module, features) once the account's disco#info is known.
    state = {"ok": None, "bound": False, "closing": False, "dropping": False, "reading": False, "mam": {},
             "bookmarks": None}
    # muc_joins: room -> the muc-join under way ({"seq", "presence"}).
    state["muc_joins"] = {}
    # upload: (service JID, max-file-size) once found.
    state["upload"] = None

    client = Client(log_context="nbxmpp-" + jid.resource)
    client.set_username(jid.localpart)
    client.set_domain(jid.domain)
    client.set_resource(jid.resource)
    client.set_password(args.password)
    client.set_custom_host("%s:%d" % (args.host, args.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
    client.set_mechs({args.mech})
    client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(args.ca_file)])

    caps = None
    if args.pep or args.bookmarks:
        # What Gajim does: its features go to EntityCaps, which answers
        # disco#info for its node, and every presence carries the hash.
        features = [Namespace.DISCO_INFO, Namespace.CAPS]
        if args.pep:
            features.append(Namespace.AVATAR_METADATA + "+notify")
        if args.bookmarks:
            features.append(Namespace.BOOKMARKS_1 + "+notify")
        entity_caps = client.get_module("EntityCaps")
        entity_caps.set_caps([DiscoIdentity(category="client", type="pc", name="starling-imclients")],
                             sorted(features), "https://gajim.org")
        caps = entity_caps.caps._asdict()

    def finish(ok, error=None):
        if state["ok"] is not None:
            return
        if error is not None:
            emit(event="fatal", error=error)
        state["ok"] = ok
        if ok and state["bound"] and client.state != StreamState.DISCONNECTED:
            # A clean close: nbxmpp sends </stream:stream> after anything
            # still queued, and "disconnected" follows once the server has
            # closed its side.
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

    def sent(seq):
        """Reports command seq done: a stanza sent that has no answer."""
        emit(event="result", seq=seq)

    def answer(seq, task, outcome):
        """Reports the outcome of a module's request task as command seq's
        result: outcome(its value), or the condition of a stanza error."""
        @guarded
        def done(task):
            try:
                out = outcome(task.finish())
            except StanzaError as e:
                out = {"error": e.condition}
            emit(event="result", seq=seq, **out)
        # weak=False: nbxmpp keeps only weak references to callbacks by default.
        task.add_done_callback(done, weak=False)

    def then(seq, task, fn, missing=None):
        """Calls fn(value) once task is done; a stanza error ends command
        seq with its condition, except item-not-found when missing is not
        None (Gajim takes a failed fetch for no bookmarks): fn(missing)."""
        @guarded
        def done(task):
            try:
                value = task.finish()
            except StanzaError as e:
                if missing is not None and e.condition == "item-not-found":
                    fn(missing)
                    return
                emit(event="result", seq=seq, error=e.condition)
                return
            fn(value)
        task.add_done_callback(done, weak=False)

    # nbxmpp's HTTP session (Soup 3), as Gajim makes one for uploads and
    # downloads.
    http = HTTPSession()
    pinned = Gio.TlsCertificate.new_from_file(args.ca_file)

    def https(request, method, url, done):
        """Sends an nbxmpp.http request, trusting what the XMPP connection
        does: GIO's verification, "unknown CA" forgiven for the pinned
        certificate only; done(request) when it has finished."""
        def accept(_message, certificate, errors):
            return errors == Gio.TlsCertificateFlags.UNKNOWN_CA and certificate.is_same(pinned)
        # On the Soup message itself: HTTPRequest.connect() drops a
        # handler's return value, which is the answer here.
        request.get_soup_message().connect("accept-certificate", accept)
        request.send(method, url, timeout=int(args.timeout), callback=guarded(done))

    def upload_service(seq, fn):
        """Calls fn(jid, max-file-size) with the upload service Gajim finds:
        disco#items of the domain, disco#info of each until one has
        urn:xmpp:http:upload:0. Asked once."""
        if state["upload"] is not None:
            fn(*state["upload"])
            return

        def items(result):
            jids = [item.jid for item in result.items]

            def info(i):
                if i == len(jids):
                    emit(event="result", seq=seq, error="no upload service among %s" % [str(j) for j in jids])
                    return

                def got(disco):
                    if disco.has_httpupload:
                        state["upload"] = (disco.jid, disco.httpupload_max_file_size)
                        fn(*state["upload"])
                        return
                    info(i + 1)
                then(seq, client.get_module("Discovery").disco_info(jids[i]), got)
            info(0)
        then(seq, client.get_module("Discovery").disco_items(JID.from_string(jid.domain)), items)

    def bookmarks_module(seq, fn):
        """Calls fn(module, features) with the bookmarks module Gajim uses
        for the account's disco#info features, asked once."""
        if state["bookmarks"] is not None:
            fn(*state["bookmarks"])
            return

        def got(info):
            features = [f for f in BOOKMARK_FEATURES if f in info.features]
            state["bookmarks"] = (bookmark_module(features), features)
            fn(*state["bookmarks"])
        then(seq, client.get_module("Discovery").disco_info(JID.from_string(jid.bare)), got)

    def fetch_bookmarks(seq, module, fn):
        then(seq, client.get_module(module).request_bookmarks(), lambda bms: fn(list(bms or [])), missing=[])

    def store_bookmarks(seq, module, bookmarks):
        """Stores the whole list as Gajim's module does (private or PEP
        storage:bookmarks), and reports command seq done once the server has
        answered."""
        if module == "PEPBookmarks":
            task = client.get_module("PubSub").publish(Namespace.BOOKMARKS, build_storage_node(bookmarks), id_="current",
                                                      options=PEP_OPTIONS, force_node_options=True)
        else:
            task = client.get_module("PrivateBookmarks").store_bookmarks(bookmarks)
        then(seq, task, lambda _: sent(seq))

    def bookmark_command(seq, cmd):
        name = cmd["cmd"]

        def run(module, features):
            if name == "bookmarks-get":
                fetch_bookmarks(seq, module, lambda bms: emit(
                    event="result", seq=seq, module=module, features=features,
                    bookmarks=[bookmark_dict(b) for b in bms]))
                return
            room = JID.from_string(cmd["jid"])
            if name == "bookmark-add":
                bookmark = BookmarkData(jid=room, name=cmd["name"] or None, nick=cmd["nick"] or None,
                                        autojoin=bool(cmd["autojoin"]))
                if module == "NativeBookmarks":
                    then(seq, client.get_module("PubSub").publish(
                        Namespace.BOOKMARKS_1, build_conference_node(bookmark), id_=str(room),
                        options=NATIVE_OPTIONS, force_node_options=True), lambda _: sent(seq))
                    return
                fetch_bookmarks(seq, module, lambda bms: store_bookmarks(
                    seq, module, [b for b in bms if b.jid != room] + [bookmark]))
            elif name == "bookmark-remove":
                if module == "NativeBookmarks":
                    then(seq, client.get_module("NativeBookmarks").retract_bookmark(room), lambda _: sent(seq))
                    return
                fetch_bookmarks(seq, module, lambda bms: store_bookmarks(
                    seq, module, [b for b in bms if b.jid != room]))
        bookmarks_module(seq, guarded(run))

    @guarded
    def command(line):
        cmd = json.loads(line)
        name, seq = cmd["cmd"], cmd["seq"]
        roster = client.get_module("Roster")
        presence = client.get_module("BasePresence")
        blocking = client.get_module("Blocking")
        vcard = client.get_module("VCardTemp")
        if name == "roster-get":
            answer(seq, roster.request_roster(), lambda r: {"roster": [roster_item(i) for i in r.items or []]})
        elif name == "roster-add":
            answer(seq, roster.set_item(cmd["jid"], cmd["name"], cmd["groups"]), lambda _: {})
        elif name == "roster-remove":
            answer(seq, roster.delete_item(cmd["jid"]), lambda _: {})
        elif name == "subscribe":
            presence.subscribe(cmd["jid"])
            sent(seq)
        elif name == "approve":
            presence.subscribed(cmd["jid"])
            sent(seq)
        elif name == "presence":
            presence.send(status=cmd["status"], caps=caps)
            sent(seq)
        elif name == "send":
            msg = Message(to=cmd["to"], body=cmd["body"], typ="chat")
            msg.setID(cmd["id"])
            if cmd.get("oob"):
                msg.addChild("x", namespace=Namespace.X_OOB).addChild("url").setData(cmd["oob"])
            client.send_stanza(msg)
            sent(seq)
        elif name == "block":
            answer(seq, blocking.block([JID.from_string(cmd["jid"])]), lambda _: {})
        elif name == "unblock":
            answer(seq, blocking.unblock([JID.from_string(cmd["jid"])]), lambda _: {})
        elif name == "blocklist":
            answer(seq, blocking.request_blocking_list(), lambda jids: {"blocklist": sorted(str(j) for j in jids)})
        elif name == "vcard-set":
            card = VCard(data={"FN": cmd["fn"], "NICKNAME": cmd["nickname"]})
            answer(seq, vcard.set_vcard(card), lambda _: {})
        elif name == "vcard-get":
            def card_fields(card):
                out = {"FN": card.data.get("FN") or "", "NICKNAME": card.data.get("NICKNAME") or ""}
                photo = card.data.get("PHOTO")
                if isinstance(photo, dict) and photo.get("BINVAL"):
                    out["PHOTO/TYPE"] = photo.get("TYPE") or ""
                    out["PHOTO/BINVAL"] = base64.b64encode(base64.b64decode(photo["BINVAL"])).decode()
                return {"vcard": out}
            answer(seq, vcard.request_vcard(JID.from_string(cmd["jid"])), card_fields)
        elif name == "carbons-enable":
            iq = Iq(typ="set")
            iq.addChild("enable", namespace=Namespace.CARBONS)

            @guarded
            def enabled(_client, stanza):
                if isResultNode(stanza):
                    emit(event="result", seq=seq)
                else:
                    emit(event="result", seq=seq, error=stanza.getError() or "error")
            client.send_stanza(iq, callback=enabled)
        elif name == "drop":
            if cmd["how"] != "close":
                raise ValueError("nbxmpp cannot drop a connection %r: it shuts its socket down itself" % cmd["how"])
            state["dropping"] = True
            client.disconnect(immediate=True)
            sent(seq)
        elif name == "resume":
            client.connect()
            sent(seq)
        elif name == "mam-page":
            queryid = "q%d" % seq
            state["mam"][queryid] = []

            def page(data):
                rsm = data.rsm
                return {"page": state["mam"].pop(queryid), "complete": data.complete,
                        "first": rsm.first or "", "last": rsm.last or "",
                        "count": rsm.count if rsm.count is not None else -1}
            archive = JID.from_string(cmd["jid"]) if cmd.get("jid") else None
            answer(seq, client.get_module("MAM").make_query(archive, queryid=queryid, after=cmd["after"] or None,
                                                            max_=cmd["max"]), page)
        elif name == "avatar-publish":
            # Gajim's way: UserAvatar.set_avatar() publishes the data node,
            # then the metadata node, each with publish-options
            # pubsub#persist_items true and pubsub#access_model presence
            # (open if "public"), reconfiguring a node whose configuration
            # differs (force_node_options).
            data = base64.b64decode(cmd["data"])
            avatar = Avatar()
            avatar.add_image_source(data, cmd["type"], cmd["height"], cmd["width"])
            answer(seq, client.get_module("UserAvatar").set_avatar(avatar, public=bool(cmd.get("public"))),
                   lambda _: {"id": hashlib.sha1(data).hexdigest()})
        elif name == "avatar-get":
            def fetched(result):
                if result is None:
                    return {"error": "no-data"}
                return {"data": base64.b64encode(result.data).decode()}
            answer(seq, client.get_module("UserAvatar").request_avatar_data(cmd["id"], jid=JID.from_string(cmd["jid"])),
                   fetched)
        elif name == "disco-features":
            answer(seq, client.get_module("Discovery").disco_info(JID.from_string(cmd["jid"])),
                   lambda info: {"features": sorted(info.features)})
        elif name in ("bookmarks-get", "bookmark-add", "bookmark-remove"):
            bookmark_command(seq, cmd)
        elif name == "muc-join":
            room = cmd["room"]
            history = {"maxchars": "0"} if cmd.get("maxstanzas") is None else {"maxstanzas": str(cmd["maxstanzas"])}
            state["muc_joins"][room] = {"seq": seq, "presence": None}

            def join_timeout():
                if state["muc_joins"].get(room, {}).get("seq") == seq:
                    del state["muc_joins"][room]
                    emit(event="result", seq=seq, error="timeout")
                return False
            GLib.timeout_add(int((cmd.get("timeout") or args.timeout) * 1000), join_timeout)
            presence.send(jid="%s/%s" % (room, cmd["nick"]), muc_history=history, caps=caps)
        elif name == "muc-configure":
            muc = client.get_module("MUC")

            @guarded
            def configure(result):
                form = result.form
                for var, value in cmd["fields"].items():
                    if form is None or var not in form.vars:
                        emit(event="result", seq=seq, error="no-field " + var)
                        return
                    form[var].value = value
                then(seq, muc.set_config(result.jid, form), lambda _: sent(seq))
            then(seq, muc.request_config(JID.from_string(cmd["room"])), configure)
        elif name == "muc-say":
            msg = Message(to=cmd["room"], body=cmd["body"], typ="groupchat")
            msg.setID(cmd["id"])
            client.send_stanza(msg)
            sent(seq)
        elif name == "muc-pm":
            msg = Message(to=cmd["to"], body=cmd["body"], typ="chat")
            msg.setID(cmd["id"])
            msg.setTag("x", namespace=Namespace.MUC_USER)
            client.send_stanza(msg)
            sent(seq)
        elif name == "muc-nick":
            presence.send(jid="%s/%s" % (cmd["room"], cmd["nick"]), caps=caps)
            sent(seq)
        elif name == "muc-kick":
            answer(seq, client.get_module("MUC").set_role(JID.from_string(cmd["room"]), cmd["nick"], "none",
                                                          reason=cmd.get("reason") or None), lambda _: {})
        elif name == "muc-leave":
            presence.send(jid="%s/%s" % (cmd["room"], cmd["nick"]), typ="unavailable")
            sent(seq)
        elif name == "muc-info":
            def info(result):
                users = result.info.muc_users
                return {"features": sorted(result.info.features),
                        "muc": {"count": int(users) if users not in (None, "") else -1,
                                "identities": ["%s/%s" % (i.category, i.type) for i in result.info.identities]}}
            answer(seq, client.get_module("MUC").request_info(JID.from_string(cmd["room"]), request_vcard=False), info)
        elif name == "upload":
            def put(service, max_size):
                size = os.path.getsize(cmd["path"])

                @guarded
                def slot(data):
                    def done(request):
                        if request.is_complete():
                            emit(event="result", seq=seq, url=data.get_uri, service=str(service),
                                 max_file_size=int(max_size) if max_size is not None else -1)
                        else:
                            emit(event="result", seq=seq, error="PUT: %s (HTTP %d)" % (
                                request.get_error_string(), int(request.get_status())))
                    request = http.create_request()
                    request.set_request_body_from_path(cmd["type"], Path(cmd["path"]))
                    for header, value in data.headers.items():
                        request.get_request_headers().append(header, value)
                    https(request, "PUT", data.put_uri, done)
                then(seq, client.get_module("HTTPUpload").request_slot(service, cmd["name"], size, cmd["type"]), slot)
            upload_service(seq, put)
        elif name == "upload-slot":
            if state["upload"] is None:
                raise ValueError("no upload service: upload first")

            def slot(task):
                try:
                    data = task.finish()
                except HTTPUploadStanzaError as e:
                    out = {"error": e.condition, "app_error": e.app_condition or ""}
                    if e.get_max_file_size() is not None:
                        out["max_file_size"] = int(e.get_max_file_size())
                    emit(event="result", seq=seq, **out)
                    return
                emit(event="result", seq=seq, url=data.get_uri)
            client.get_module("HTTPUpload").request_slot(state["upload"][0], cmd["name"], cmd["size"],
                                                         cmd["type"]).add_done_callback(guarded(slot), weak=False)
        elif name == "download":
            def downloaded(request):
                status = int(request.get_status())
                if not request.is_complete():
                    emit(event="result", seq=seq, http_status=status,
                         error="GET: %s (HTTP %d)" % (request.get_error_string(), status))
                    return
                data = request.get_data()
                content_type, _params = request.get_response_headers().get_content_type()
                emit(event="result", seq=seq, http_status=status, size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), content_type=content_type or "")
            https(http.create_request(), "GET", cmd["url"], downloaded)
        elif name == "quit":
            sent(seq)
            finish(True)
        else:
            raise ValueError("unknown command %r" % name)

    def read_commands():
        # stdin is read on its own thread; each line runs on the main loop.
        def once(fn, *a):
            fn(*a)
            return False  # run once
        for line in sys.stdin:
            if line.strip():
                GLib.idle_add(once, command, line)
        GLib.idle_add(once, finish, True)  # end of input: quit

    @guarded
    def on_connected(_client, _signal):
        state["bound"] = True
        emit(event="session", jid=str(client.get_bound_jid()))
        # Once: a resumption that fails binds a new session.
        if not state["reading"]:
            state["reading"] = True
            threading.Thread(target=read_commands, daemon=True).start()

    @guarded
    def on_sm_enabled(_client, stanza, _properties):
        emit(event="sm-enabled", id=stanza.getAttr("id") or "", resume=stanza.getAttr("resume") in ("true", "1"))

    @guarded
    def on_resumed(_client, _signal):
        emit(event="resumed", h=client._smacks._out_h)

    @guarded
    def on_resume_failed(_client, _signal):
        emit(event="sm-failed")

    @guarded
    def on_roster_push(_client, _stanza, properties):
        if properties.roster is not None:
            emit(event="roster-push", item=roster_item(properties.roster.item))

    @guarded
    def on_presence(_client, stanza, properties):
        # VCardAvatar (before us) parsed any vcard-temp:x:update.
        photo = None
        if properties.avatar_state == AvatarState.ADVERTISED:
            photo = properties.avatar_sha
        elif properties.avatar_state == AvatarState.EMPTY:
            photo = ""
        emit(event="presence", **{"from": str(stanza.getFrom()), "to": str(stanza.getTo()),
                                  "type": properties.type.value or "available",
                                  "show": "" if properties.show.is_online else properties.show.value,
                                  "status": properties.status or "", "photo": photo})

    @guarded
    def on_message(_client, stanza, properties):
        # For carbons and MAM results, nbxmpp has unwrapped the forwarded
        # message already: stanza is that one.
        out = {"from": str(stanza.getFrom()), "to": str(stanza.getTo()), "type": properties.type.value,
               "id": properties.id or "", "body": properties.body or "",
               "oob": properties.oob.url if properties.oob is not None else "",
               "stanza_ids": [{"by": el.getAttr("by") or "", "id": el.getAttr("id") or ""}
                              for el in stanza.getTags("stanza-id", namespace=Namespace.SID)]}
        if properties.is_pubsub_event and properties.mam is None and properties.carbon is None:
            # UserAvatar (before us) put the parsed metadata in the event.
            ev = properties.pubsub_event
            if ev.node == Namespace.BOOKMARKS_1:
                # NativeBookmarks (before us) put the parsed item in the event.
                emit(event="bookmark-event", **{"from": str(stanza.getFrom()), "id": ev.id or "",
                                                "retracted": ev.retracted,
                                                "bookmark": bookmark_dict(ev.data) if ev.data is not None else None})
            if ev.node == Namespace.AVATAR_METADATA and ev.data is not None:
                for info in ev.data.infos:
                    emit(event="avatar-metadata", **{"from": str(stanza.getFrom()), "id": ev.id or "", "avatar": {
                        "id": info.id, "bytes": info.bytes, "type": info.type,
                        "width": info.width if info.width is not None else -1,
                        "height": info.height if info.height is not None else -1}})
            return
        if properties.mam is not None:
            results = state["mam"].get(properties.mam.query_id)
            if results is None:
                emit(event="fatal", error="a MAM result for no query of ours: %s" % properties.mam.query_id)
                return
            results.append(dict(result_id=properties.mam.id, queryid=properties.mam.query_id,
                                archive=str(properties.mam.archive or ""), **out))
            return
        if properties.carbon is not None:
            emit(event="carbon", kind=properties.carbon.type, carbon_from="", **out)
            return
        if properties.error is not None:
            out["error"] = properties.error.condition
        node = stanza.getTag("delay", namespace=Namespace.DELAY2)
        if node is not None:
            stamp = parse_delay(stanza)  # seconds since the epoch, or None if unparsable
            out["delay"] = {"from": node.getAttr("from") or "",
                            "stamp": datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat().replace("+00:00", "Z") if stamp is not None else ""}
        emit(event="message", **out)

    def muc_presence_fields(stanza, properties):
        user = properties.muc_user
        return {"room": str(properties.jid.new_as_bare()), "nick": properties.jid.resource or "",
                "role": user.role.value if user is not None and user.role is not None else "",
                "affiliation": user.affiliation.value if user is not None and user.affiliation is not None else "",
                "jid": str(user.jid) if user is not None and user.jid is not None else "",
                "codes": sorted(int(c.value) for c in (properties.muc_status_codes or [])),
                "new_nick": (user.nick or "") if user is not None else "",
                "actor": (user.actor or "") if user is not None else "",
                "reason": (user.reason or "") if user is not None else "",
                "occupant_id": properties.occupant_id or ""}

    @guarded
    def on_muc_presence(_client, stanza, properties):
        room = str(properties.jid.new_as_bare()) if properties.jid is not None else ""
        pending = state["muc_joins"].get(room)
        if properties.type.is_error:
            if pending is not None and pending["presence"] is None:
                del state["muc_joins"][room]
                emit(event="result", seq=pending["seq"], error=properties.error.condition)
            return
        if not properties.from_muc or stanza.getTag("x", namespace=Namespace.MUC_USER) is None:
            return
        fields = muc_presence_fields(stanza, properties)
        emit(event="muc-presence", **{"from": str(stanza.getFrom()),
                                      "type": properties.type.value or "available", "muc": fields})
        if pending is not None and 110 in fields["codes"] and not properties.type.is_unavailable:
            pending["presence"] = fields

    @guarded
    def on_muc_message(_client, stanza, properties):
        if properties.mam is not None or properties.carbon is not None:
            return
        room = str(properties.jid.new_as_bare()) if properties.jid is not None else ""
        pending = state["muc_joins"].get(room)
        if properties.muc_subject is not None and pending is not None and pending["presence"] is not None:
            del state["muc_joins"][room]
            emit(event="result", seq=pending["seq"], muc=pending["presence"])
        if properties.body is None or not (properties.type.is_groupchat or properties.muc_private_message):
            return
        out = {"from": str(stanza.getFrom()), "to": str(stanza.getTo()), "type": properties.type.value,
               "id": properties.id or "", "body": properties.body,
               "stanza_ids": [{"by": el.getAttr("by") or "", "id": el.getAttr("id") or ""}
                              for el in stanza.getTags("stanza-id", namespace=Namespace.SID)],
               "muc": {"room": room, "nick": properties.jid.resource or "", "occupant_id": properties.occupant_id or ""}}
        node = stanza.getTag("delay", namespace=Namespace.DELAY2)
        if node is not None:
            stamp = parse_delay(stanza)
            out["delay"] = {"from": node.getAttr("from") or "",
                            "stamp": datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat().replace("+00:00", "Z") if stamp is not None else ""}
        emit(event="muc-message", **out)

    def describe_error():
        domain, error, text = client.get_error()
        _cert, errors = client.peer_certificate
        s = "%s: %s%s" % (domain, error, " (%s)" % text if text else "")
        if errors:
            s += "; certificate errors: %s" % sorted(str(e) for e in errors)
        return s

    @guarded
    def on_disconnected(_client, _signal):
        if state["dropping"]:
            state["dropping"] = False
            emit(event="dropped")
            return
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
            emit(event="fatal", error="stream not closed within %gs" % args.timeout)
            state["ok"] = False
            loop.quit()
        return False

    client.subscribe("connected", on_connected)
    client.subscribe("disconnected", on_disconnected)
    client.subscribe("connection-failed", on_connection_failed)
    client.subscribe("resume-successful", on_resumed)
    client.subscribe("resume-failed", on_resume_failed)
    client.register_handler(StanzaHandler(name="enabled", callback=on_sm_enabled, xmlns=Namespace.STREAM_MGMT, priority=50))
    # After the modules' own handlers (priority 15 and lower), which parse
    # the stanza into properties and acknowledge roster pushes.
    client.register_handler(StanzaHandler(name="iq", callback=on_roster_push, typ="set", ns=Namespace.ROSTER, priority=50))
    client.register_handler(StanzaHandler(name="presence", callback=on_presence, priority=50))
    client.register_handler(StanzaHandler(name="message", callback=on_message, priority=50))
    if args.muc:
        client.register_handler(StanzaHandler(name="presence", callback=on_muc_presence, priority=51))
        client.register_handler(StanzaHandler(name="message", callback=on_muc_message, priority=51))

    GLib.timeout_add(int(args.timeout * 1000), on_timeout)
    client.connect()
    loop.run()
    sys.exit(0 if state["ok"] else 1)


if __name__ == "__main__":
    main()
