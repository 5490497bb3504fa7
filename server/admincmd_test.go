package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/server"
)

// TestAdminCommandErrors: the admin socket's operator commands answer
// "error: TEXT" for what they cannot do, whatever the CLI checked first
// (issue 17 part 1).
func TestAdminCommandErrors(t *testing.T) {
	srv, cfg, _ := start(t)
	ctx := context.Background()
	for line, want := range map[string]string{
		"sessions":                      "",
		"sessions localhost":            "",
		"sessions nothere.example":      "error: nothere.example is not served (server.hosts: localhost)",
		"kick":                          `error: "" is not a user's JID`,
		"kick localhost":                `error: "localhost" is not a user's JID`,
		"kick bob@nothere.example":      "error: nothere.example is not served",
		"kick bob@localhost spam":       "error: the reason is not a quoted string",
		`kick bob@localhost "spam"`:     "ended 0",
		"announce *":                    "error: no message",
		`announce * "  "`:               "error: no message",
		`announce nothere.example "hi"`: "error: nothere.example is not served",
		`announce localhost "hi"`:       "sent 0",
		`announce * "hi"`:               "sent 0",
		"reload":                        "error: this server cannot reload its configuration",
	} {
		answer, err := server.Admin(ctx, cfg, line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if want == "" && answer != "" || !strings.HasPrefix(answer, want) {
			t.Errorf("%s: %q, want %q", line, answer, want)
		}
	}

	srv.SetReloader(func() error { return errors.New("limits.max_stanza_bytes: too small") })
	if answer, _ := server.Admin(ctx, cfg, "reload"); answer != "error: limits.max_stanza_bytes: too small" {
		t.Errorf("a failed reload: %q", answer)
	}
	srv.SetReloader(func() error { return nil })
	if answer, _ := server.Admin(ctx, cfg, "reload"); answer != "ok" {
		t.Errorf("reload: %q", answer)
	}
}
