# `make demo` and `make test` work on a machine with only python3 and make: each sets up
# its own virtual environment from the lock file first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench lock clean

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Prism serves SendGrid's OpenAPI spec so the SendGrid tests check every request body.
node_modules/.bin/prism: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP)
	$(BIN)/python examples/freshen.py
	$(BIN)/digest build

test: $(STAMP) node_modules/.bin/prism
	$(BIN)/ruff check digest tests bench examples
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check digest tests bench examples
	$(BIN)/ruff format --check digest tests bench examples

bench: $(STAMP)
	$(BIN)/python bench/bench_build.py

# Re-pin every dependency after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) build outbox state examples/feeds .pytest_cache .ruff_cache
