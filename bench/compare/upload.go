package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// The upload cases (HTTP file upload, XEP-0363) run on each server
// started afresh with its upload service on upload.localhost, listed in
// the host's disco#items, its PUT and GET URLs on the HTTPS port
// (anchor.HTTPSPort) with the server's certificate, files up to
// anchor.UploadMaxSize and quotas out of reach:
//
//   - Starling: [modules.upload] (starlingUpload), on the [http]
//     tls_listen the other cases use for WebSocket.
//   - Prosody: mod_http_file_share, a component (internal/anchor).
//   - ejabberd: mod_http_upload, its request handler on the HTTPS
//     listener (internal/anchor).
//
// starling-bench's upload scenario finds the service by disco, uploads
// the files (slot request, PUT) and downloads each, checking every byte.

// uploadCase is an upload case: n clients, each uploading files files of
// size bytes (starling-bench's --size), then downloading another's. It
// may take ten minutes: Prosody uploads a few MiB a second.
func uploadCase(name, size, title string, n, files int) benchCase {
	return benchCase{
		name: name, scenario: "upload", upload: true, timeout: 10 * time.Minute,
		title: fmt.Sprintf("files of %s, %d clients, %d files each", title, n, files),
		args:  strings.Fields(fmt.Sprintf("--scenario upload --size %s --n %d --count %d", size, n, files)),
	}
}

// starlingUpload is Starling's [modules.upload] with upload on: files up
// to anchor.UploadMaxSize, the quotas (in all and a day) out of reach; the
// expiry its default (the directory goes at the end anyway).
func starlingUpload(on bool) string {
	if !on {
		return ""
	}
	return fmt.Sprintf("[modules.upload]\nmax_file_size = %d\nquota = %d\ndaily_quota = %d\n",
		anchor.UploadMaxSize, int64(anchor.UploadQuota), int64(anchor.UploadQuota))
}

// mibPerS formats a throughput in MiB/s.
func mibPerS(v []float64) string { return strconv.FormatFloat(v[0], 'f', 1, 64) + " MiB/s" }

// filesPerS formats a rate of files, which may be a few a second.
func filesPerS(v []float64) string {
	if v[0] >= 100 {
		return thousands(v[0])
	}
	return strconv.FormatFloat(v[0], 'f', 2, 64)
}

// uploadVerified is the verdict on the downloads: every one of the size
// uploaded and the same bytes.
func uploadVerified(r *result) string {
	if r.Downloads > 0 && r.Verified == r.Downloads && r.Downloads == r.Uploads {
		return "yes, " + thousands(float64(r.Verified))
	}
	return fmt.Sprintf("NO: %d of %d downloads (%d uploads)", r.Verified, r.Downloads, r.Uploads)
}
