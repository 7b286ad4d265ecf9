# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it; `make test`
# adds every extra the tests need and Debian's chromium for the browser test.

VENV ?= .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
ALL := $(VENV)/.all-installed
CHROMIUM := /usr/bin/chromium
CQL_ENGINE := tests/cql/node_modules/.package-lock.json
NPM := /usr/bin/npm

.PHONY: demo test lint docs clean vscode

$(CORE): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

# test: the suite's tools; docs: mkdocs and Playwright; analyze: z3; sql, spark: the engines;
# lsp: the language server; export: the FHIR and USDM models.
$(ALL): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[test,docs,analyze,sql,spark,lsp,export]'
	touch $(ALL)

# The exported ELM is tested against cql-execution, the reference JavaScript CQL engine,
# at the version locked in tests/cql/package-lock.json.
$(CQL_ENGINE): tests/cql/package-lock.json | $(NPM)
	cd tests/cql && npm ci --no-audit --no-fund

$(NPM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm

# The browser test drives Debian's chromium, never a browser build of Playwright's own.
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

demo: $(CORE)
	$(BIN)/critlang check protocols/ctd_ild.crit
	$(BIN)/critlang test protocols/ctd_ild.crit
	# examples/patients.jsonl holds one bad record on purpose: it is reported, the rest go on (exit 2)
	$(BIN)/critlang eval protocols/ctd_ild.crit examples/patients.jsonl; test $$? -le 2

lint: $(ALL)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: lint $(CHROMIUM) $(CQL_ENGINE)
	$(BIN)/pytest

docs: $(ALL)
	$(BIN)/mkdocs build --strict

# The VS Code extension: npm installs the extension's locked tools (package-lock.json),
# its grammar test runs under vscode-textmate, and vsce packages it into a .vsix.
vscode:
	cd editors/vscode && npm ci --no-audit --no-fund && npm test && npm run package -- --out critlang.vsix

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis site tests/cql/node_modules
