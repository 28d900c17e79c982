# PruneScope: `make run` starts the app, `make test` runs every test. Both set up .venv first;
# on a machine that is already set up they reinstall nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint format bench chromium graphviz clean

run: $(RUNTIME_STAMP) graphviz
	$(BIN)/streamlit run app.py

test: $(RUNTIME_STAMP) $(DEV_STAMP) chromium graphviz
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(RUNTIME_STAMP) $(DEV_STAMP)
	for name in inspect structured samples importance recovery heads scale soak ui_latency speed methods graph; do \
		$(BIN)/python -m bench.$$name || exit 1; done

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The project itself is installed editable (no dependencies, no build isolation) for the
# `prunescope` command line.
$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Debian's chromium drives the browser tests; installed when missing and we may (root + apt).
# Otherwise the browser tests skip with a reason (and fail under CI=true).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	else echo "chromium is missing and cannot be installed here (needs root and apt): browser tests will skip"; fi

# Debian's graphviz (its `dot` program) draws the graph view's SVG download; installed when missing and we may.
# The page itself draws in the browser and needs none: without it only the SVG download is unavailable.
graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian graphviz for the graph's SVG download"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz >/dev/null; }; \
	else echo "graphviz is missing and cannot be installed here (needs root and apt): the graph's SVG download is off"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
