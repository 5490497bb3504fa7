# Starling. `make` (= `make check`) installs what the full test suite needs
# and runs all of it with STARLING_REQUIRE_ALL=1, under which a test whose
# prerequisite is missing fails instead of skipping.

# Debian packages the tests drive (pebble: the ACME CA of server's TestACME);
# PostgreSQL is added below if absent.
DEB_PACKAGES := python3-slixmpp python3-aiohttp python3-omemo python3-oldmemo python3-xmlschema go-sendxmpp python3-nbxmpp python3-gi gir1.2-glib-2.0 gir1.2-soup-3.0 glib-networking profanity tmux chromium systemd pebble
# Servers the tests run themselves (internal/anchor: conformance/federation's
# peers, the anchors; coturn: conformance/turn's TURN server): installed
# without starting their system services.
DEB_SERVERS := prosody ejabberd coturn
# The PostgreSQL server the tests create throwaway databases on.
TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
FUZZTIME ?= 30s
XMPPJS := conformance/xmppjs/testdata
BROWSER := conformance/browser/testdata
# Converse.js for the bundled web chat page ([http] web_client), installed
# by `make webclient`; the server serves $(WEBCLIENT)/node_modules/converse.js.
WEBCLIENT := webclient/js

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
GO ?= go

.DEFAULT_GOAL := check
.PHONY: check deps webclient postgres lint test fuzz bench conformance-anchors bench-compare compliance

check: deps postgres lint
	STARLING_REQUIRE_ALL=1 STARLING_TEST_POSTGRES='$(TEST_POSTGRES)' \
		$(GO) test -race -count=1 -timeout 20m ./...

# Installs only what is missing; `apt-get update` only when something is.
deps:
	@missing=; \
	for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	[ -d /etc/postgresql ] || missing="$$missing postgresql"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@# Prosody and ejabberd (DEB_SERVERS): a policy-rc.d exiting 101 ("action
	@# forbidden") keeps their packages from starting the system services, as
	@# internal/anchor's Install does.
	@missing=; \
	for p in $(DEB_SERVERS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing (without starting their services)"; \
		policy=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && \
			$(SUDO) chmod 755 /usr/sbin/policy-rc.d && policy=1; \
		fi; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		status=$$?; \
		[ -z "$$policy" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; \
		exit $$status; \
	fi
	@# xmpp.js for conformance/xmppjs, at the version its package-lock.json pins.
	@[ -f $(XMPPJS)/node_modules/@xmpp/client/package.json ] || \
		npm ci --prefix $(XMPPJS) --no-audit --no-fund
	@# Converse.js and playwright-core for conformance/browser (which drives
	@# Debian's chromium), at the versions its package-lock.json pins.
	@[ -f $(BROWSER)/node_modules/converse.js/package.json ] && \
		[ -f $(BROWSER)/node_modules/playwright-core/package.json ] || \
		npm ci --prefix $(BROWSER) --no-audit --no-fund
	@$(MAKE) --no-print-directory webclient

# Converse.js for the web chat page, at the version webclient/js's
# package-lock.json pins (no install scripts: only its dist/ is used).
webclient:
	@command -v npm >/dev/null || { echo "npm is needed to install Converse.js: apt-get install npm (or make deps)"; exit 1; }
	@[ -f $(WEBCLIENT)/node_modules/converse.js/dist/converse.min.js ] || \
		npm ci --prefix $(WEBCLIENT) --no-audit --no-fund --ignore-scripts

postgres: deps
	@pg_isready -q -h 127.0.0.1 || \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@psql '$(TEST_POSTGRES)' -qAtc 'select 1' >/dev/null || { \
		echo "cannot connect to $(TEST_POSTGRES): the tests need it (set TEST_POSTGRES=... to use another server)"; \
		exit 1; }

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Everything that needs only Go; the rest skips with a reason.
test:
	$(GO) test ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./stream
	$(GO) test -run '^$$' -fuzz '^FuzzFrame$$' -fuzztime $(FUZZTIME) ./websocket

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The real-client suite against Starling and against Prosody and ejabberd
# (installed from Debian packages if missing, run on 127.0.0.2 and
# 127.0.0.3, stopped at the end); prints the table check × server and
# writes it to docs/conformance-anchors.md. See conformance/anchors.
conformance-anchors: deps postgres
	$(SUDO) env "PATH=$$PATH" STARLING_TEST_POSTGRES='$(TEST_POSTGRES)' $(GO) run ./conformance/anchors

# docs/compliance.md: XEP-0479 requirements × the checks that prove them.
compliance: deps postgres
	STARLING_REQUIRE_ALL=1 STARLING_TEST_POSTGRES='$(TEST_POSTGRES)' $(GO) run ./conformance/compliance

# cmd/starling-bench's standard suite against Starling, Prosody and ejabberd
# (one at a time, on 127.0.0.1, .2 and .3; the anchors as above); writes
# the figures and ratios to docs/benchmarks.md. See bench/compare.
# CASES=upload (names or scenarios, comma-separated) runs only those cases
# and replaces only their rows, the rest staying from the last full run.
CASES ?=
bench-compare: deps
	$(SUDO) env "PATH=$$PATH" $(GO) run ./bench/compare $(if $(CASES),-cases $(CASES))
