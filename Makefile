# `make demo` and `make test` work on a machine with only python3 and make: each sets up
# its own virtual environment from the lock file first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench mutation stress lock clean postgresql postfix dovecot spamassassin

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Prism serves SendGrid's OpenAPI spec so the SendGrid tests check every request body;
# axe-core audits the public pages; caniemail (its data inside) checks the emailed HTML
# against the major mail clients. npm ci runs again whenever package.json or the lock changes.
node_modules/.bin/prism: package.json package-lock.json
	@command -v npm >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make test needs Node.js and npm (for Prism)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The demo signs its links with digest's public demo secret (DEMO_SECRET in
# digest/send/unsubscribe.py), whatever the shell has: `digest serve` checks them once the
# same value is exported. Anyone can forge links signed with it: never use it for real mail
# (the SMTP and SendGrid transports refuse it).
DEMO_ENV := DIGEST_SECRET=digest-demo-secret-not-for-real-mail

# The demo starts from a clean state each time: its stories were marked seen by the last run.
demo: $(STAMP)
	$(BIN)/python examples/freshen.py
	rm -rf state outbox
	$(DEMO_ENV) $(BIN)/digest build
	$(DEMO_ENV) $(BIN)/digest send --list daily
	@echo
	@echo "The edition: build/daily.html (open it in a browser), build/daily.txt, build/daily.eml"
	@echo "As each subscriber got it: outbox/daily-*/ (one .eml per subscriber; open one in a mail client)"
	@echo "Its logo, web archive and unsubscribe links come from digest serve: export $(DEMO_ENV)"
	@echo "(the demo's secret, never for real mail), then run .venv/bin/digest serve"

# The preview's browser tests drive Debian's Chromium (Playwright's own browsers are not used).
/usr/bin/chromium:
	@command -v apt-get >/dev/null || { echo "make test needs Chromium at /usr/bin/chromium"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# A real PostgreSQL server runs in the tests (in a temporary folder, on a free local port).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# A real Postfix turns a message to an unknown user into a real DSN in the bounce tests (a
# private instance in a temporary folder); "No configuration": the package sets up no system mail.
postfix:
	@test -x /usr/sbin/postfix || { \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; }

# A real Dovecot serves the bounce mailbox over IMAPS in `digest bounces fetch`'s tests (a
# private instance in a temporary folder, with a self-signed certificate made by the test).
dovecot:
	@test -x /usr/sbin/dovecot || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; }

# SpamAssassin scores the edition and the confirmation email (tests/spamassassin.py). Debian's
# package ships the whole rule set in /usr/share/spamassassin (72_active.cf, 50_scores.cf, ...:
# 4.0.1 in bookworm), so no sa-update is needed; the tests read those files and the plugins of
# /etc/spamassassin/*.pre, and not the rules sa-update may fetch into /var/lib/spamassassin,
# so a score changes only with the package. Without its recommends: they bring spamc, whose
# own recommend is spamd, a daemon systemd would start; the tests need only the package's Perl
# library and rules.
spamassassin:
	@command -v spamassassin >/dev/null || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spamassassin >/dev/null; }

test: $(STAMP) node_modules/.bin/prism /usr/bin/chromium postgresql postfix dovecot spamassassin
	$(BIN)/ruff check digest tests bench examples tools
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check digest tests bench examples tools
	$(BIN)/ruff format --check digest tests bench examples tools
	$(BIN)/mypy

bench: $(STAMP) postgresql
	$(BIN)/python bench/bench_build.py
	$(BIN)/python bench/bench_subscribers.py
	$(BIN)/python bench/bench_send.py --postgresql 100000,1000000 --senders 1
	$(BIN)/python bench/bench_send.py --warm --sendgrid 100000,1000000 --smtp "" --postgresql 100000 \
		--senders 1,2 --latency 200 --handshake 100 --naive 0 --breakdown 0
	$(BIN)/python bench/bench_webhook.py --postgresql

# mutmut on the exactly-once core (ledger, tokens, subscribers, edition), each module against
# the tests that exercise it; writes the scores to docs/testing.md. Slow: minutes per module.
# One module: $(BIN)/python tools/mutation.py digest/subscribers.py
mutation: $(STAMP) postgresql
	$(BIN)/python tools/mutation.py

# The schedule, kill and multi-sender tests 20 times in a row while the whole suite runs
# beside them; writes the outcome to docs/testing.md. About an hour on two cores.
stress: $(STAMP) node_modules/.bin/prism /usr/bin/chromium postgresql postfix dovecot spamassassin
	$(BIN)/python tools/stress.py --runs 20

# Re-pin every dependency after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) build outbox state examples/feeds .pytest_cache .ruff_cache
