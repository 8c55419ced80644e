# SpokeStack: `make run` (the platform with a demo) and `make test` (the whole suite).
# Both work on a machine with only Python 3.11+: they create .venv, install requirements.txt
# (with uv when available, installing it with pip if needed, else pip; byte-compiled, so every
# process the platform and its tests start imports in about a second less) and start a private
# PostgreSQL and Redis under ./.spokestack.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test bench browsers pgbouncer lint clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip -q
	@if command -v uv >/dev/null 2>&1; then UV=uv; \
	 elif $(PY) -m pip install -q --disable-pip-version-check uv >/dev/null 2>&1; then UV=$(VENV)/bin/uv; \
	 else UV=; fi; \
	 if [ -n "$$UV" ]; then $$UV pip install -q --compile-bytecode --python $(PY) -r requirements.txt; \
	 else echo "uv unavailable: installing with pip"; $(PY) -m pip install -q -r requirements.txt; fi
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## Command 1: the platform with a seeded demo (RESET=1 wipes the demo's data first).
run: install
	$(PY) -m spokestack.launcher run $(if $(RESET),--reset)

## Command 2: the whole test suite (PYTEST_ARGS="-k websocket" to narrow it).
test: install browsers pgbouncer
	$(PY) -m spokestack.launcher test $(PYTEST_ARGS)

## Benchmarks: `make bench` for all, `make bench BENCH=tenants` for one.
bench: install
	$(PY) -m spokestack.launcher bench $(BENCH)

## Browser tests need Debian's chromium: installed here when we are root with apt.
browsers:
	@if [ -x /usr/bin/chromium ]; then :; \
	 elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	   echo "Installing Debian's chromium for the browser tests"; \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	     || echo "!!! could not install chromium: the browser tests will be SKIPPED !!!"; \
	 else echo "!!! /usr/bin/chromium is missing and apt is unavailable: the browser tests will be SKIPPED !!!"; fi

## The isolation tests also run through Debian's PgBouncer (session pooling): installed here when
## we are root with apt.
pgbouncer:
	@if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then :; \
	 elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	   echo "Installing Debian's pgbouncer for the pooling tests"; \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null) \
	     || echo "!!! could not install pgbouncer: the pooling tests will FAIL !!!"; \
	 else echo "!!! pgbouncer is missing and apt is unavailable: the pooling tests will FAIL !!!"; fi

lint: install
	$(VENV)/bin/ruff check --config tests/ruff.toml .

clean:
	rm -rf $(VENV) .spokestack
