package main

import "testing"

// TestGoRun: the banner says `go run ./cmd/starling` only for a binary
// `go run` built (in the go-build cache's exe directory).
func TestGoRun(t *testing.T) {
	for exe, want := range map[string]bool{
		"/tmp/go-build1234/b001/exe/starling":     true,
		"/home/u/.cache/go-build/ab/exe/starling": true,
		"/usr/local/bin/starling":                 false,
		"/home/u/starling/starling":               false,
		"/tmp/starling-testbin-99/starling":       false,
		"/srv/exe/starling":                       false,
	} {
		if got := isGoRun(exe); got != want {
			t.Errorf("isGoRun(%q) = %v, want %v", exe, got, want)
		}
	}
	if got := goRunPath("github.com/starling-xmpp/starling/cmd/starling", "github.com/starling-xmpp/starling"); got != "./cmd/starling" {
		t.Errorf("goRunPath = %q", got)
	}
}
