# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it; `make test`
# adds every extra the tests need and Debian's chromium for the browser test.
# `make check` is the fast day-to-day run: lint and the tests that need no
# engine or browser (pytest markers browser, spark, sql, z3; see pyproject.toml).

VENV ?= .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
ALL := $(VENV)/.all-installed
CHROMIUM := /usr/bin/chromium
PDFTOTEXT := /usr/bin/pdftotext
CQL_ENGINE := tests/cql/node_modules/.package-lock.json

.PHONY: demo test check lint docs clean vscode system-packages fuzz

$(CORE): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

# test: the suite's tools; docs: mkdocs and Playwright; analyze: z3; sql, spark: the engines;
# lsp: the language server; export: the FHIR and USDM models.
$(ALL): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[test,docs,analyze,sql,spark,lsp,export,bindings]'
	touch $(ALL)

# The exported ELM is tested against cql-execution, the reference JavaScript CQL engine,
# at the version locked in tests/cql/package-lock.json.
$(CQL_ENGINE): tests/cql/package-lock.json | system-packages
	cd tests/cql && npm ci --no-audit --no-fund

# Debian's packages the tests use: chromium for the browser tests (never a browser build
# of Playwright's own), poppler-utils to read the printed worksheet, postgresql for a real
# PostgreSQL server (tests/pg.py), Node.js and npm for the JavaScript engine and the CQL
# engine (where the machine has no Node.js of its own). Only root can install them here; anyone else is told
# what to install, and how.
SYSTEM_PACKAGES := chromium poppler-utils postgresql nodejs npm
system-packages:
	@missing=""; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	[ -x $(PDFTOTEXT) ] || missing="$$missing poppler-utils"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "make test needs Debian's packages:$$missing (browser tests drive $(CHROMIUM), the" >&2; \
	  echo "worksheet test reads PDFs with $(PDFTOTEXT), SQL tests start a PostgreSQL server)," >&2; \
	  echo "and cannot install them as $$(id -un) here. Ask an administrator to run:" >&2; \
	  echo "    sudo apt-get install$$missing" >&2; \
	  echo "or run 'make check', which needs none of them (no browser, Spark, SQL or z3 tests)." >&2; \
	  exit 1; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing

demo: $(CORE)
	$(BIN)/critlang check protocols/ctd_ild.crit
	$(BIN)/critlang test protocols/ctd_ild.crit
	# examples/patients.jsonl holds one bad record on purpose: it is reported, the rest go on (exit 2)
	$(BIN)/critlang eval protocols/ctd_ild.crit examples/patients.jsonl; test $$? -le 2

lint: $(ALL)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: lint system-packages $(CQL_ENGINE)
	$(BIN)/pytest

check: lint
	$(BIN)/pytest -m "not (browser or spark or sql or z3 or postgres)"

# Random protocols and records through every engine (docs/conformance.md); not part of `test`.
fuzz: $(ALL) system-packages
	$(BIN)/python -m tests.conformance.fuzz --pairs 100000 --report fuzz-disagreements.jsonl

docs: $(ALL)
	$(BIN)/mkdocs build --strict

# The VS Code extension: npm installs the extension's locked tools (package-lock.json),
# its grammar test runs under vscode-textmate, and vsce packages it into a .vsix.
vscode:
	cd editors/vscode && npm ci --no-audit --no-fund && npm test && npm run package -- --out critlang.vsix

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis site tests/cql/node_modules
