// Package archive is the message archive protocol, XEP-0313 with XEP-0059
// RSM, shared by the account archive (xep/mam) and room archives
// (xep/muc): what a module that keeps an archive needs besides its own
// rules of what to archive and who may query it.
//
//   - Queries (XEP-0313 §4.1): QueryElement is <query/> in any of the
//     namespaces (urn:xmpp:mam:2, and the urn:xmpp:mam:1 and
//     urn:xmpp:mam:0 of earlier versions, whose plain <with/>, <start/>
//     and <end/> children are accepted too); ParseQuery reads its data
//     form (with, start, end, and the #extended before-id, after-id and
//     ids of §7.1), its RSM set (XEP-0059 §2: max, after, before; index
//     0 only) and <flip-page/> into a storage.ArchiveQuery. FormFields
//     is the answer to a form request (§4.1.5).
//   - Results (§4.2): ResultMessage wraps an archived message for the
//     querying resource, Fin is the <fin/> with complete and the RSM set
//     (XEP-0059 §2.6), Fit cuts a page to what a session's queue takes.
//   - Writes: IDs hands out archive IDs (storage.ArchivedMessage.ID, the
//     XEP-0359 stanza-id), Writer writes entries in the background in
//     batches (group commit) so that the message path never waits on the
//     database.
//
// It imports no module; the modules import it.
package archive
