# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it; `make test`
# adds every extra the tests need and Debian's chromium for the browser test.

VENV ?= .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
ALL := $(VENV)/.all-installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint docs clean postgres fuzz

$(CORE): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

# test: the suite's tools; docs: mkdocs and Playwright; analyze: z3; sql, spark: the engines.
$(ALL): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[test,docs,analyze,sql,spark]'
	touch $(ALL)

# The browser test drives Debian's chromium, never a browser build of Playwright's own.
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The conformance tests start a real PostgreSQL server from Debian's binaries (tests/pg.py).
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

demo: $(CORE)
	$(BIN)/critlang check protocols/ctd_ild.crit
	$(BIN)/critlang test protocols/ctd_ild.crit
	# examples/patients.jsonl holds one bad record on purpose: it is reported, the rest go on (exit 2)
	$(BIN)/critlang eval protocols/ctd_ild.crit examples/patients.jsonl; test $$? -le 2

lint: $(ALL)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: lint $(CHROMIUM) postgres
	$(BIN)/pytest

# Random protocols and records through every engine (docs/conformance.md); not part of `test`.
fuzz: $(ALL) postgres
	$(BIN)/python -m tests.conformance.fuzz --pairs 100000 --report fuzz-disagreements.jsonl

docs: $(ALL)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis site
