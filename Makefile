# Plain verbs. Each one sets up .venv first (created, or refreshed when pyproject.toml or the
# pinned constraints change), then calls the routebench CLI or pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Your own app: APP=module:attribute (as for uvicorn), APP_DIR where it imports from, PYTHON_APP the
# interpreter of its environment (default: APP_DIR/.venv or venv, else the active VIRTUAL_ENV),
# ROUTES a routes file (TOML) or LOCUSTFILE your own locustfile. With APP, PROFILE defaults to probe
# (every route alone, then together).
APP ?=
APP_DIR ?=
PYTHON_APP ?=
ROUTES ?=
LOCUSTFILE ?=
PROFILE ?= $(if $(APP),probe,default)
ARGS ?=
APP_FLAGS = $(if $(APP),--app '$(APP)') $(if $(APP_DIR),--app-dir '$(APP_DIR)') \
	$(if $(PYTHON_APP),--python '$(PYTHON_APP)') $(if $(ROUTES),--routes '$(ROUTES)') \
	$(if $(LOCUSTFILE),--locustfile '$(LOCUSTFILE)')

.PHONY: help lint test test-fast test-stack test-slow serve loadtest capacity ui bench clean lock

help:
	@echo "make loadtest  run the $(PROFILE) experiment matrix headless and write a report"
	@echo "              APP=module:attribute APP_DIR=DIR: your own app, each route probed and given a verdict"
	@echo "make test      ruff, mypy, then every tier of the suite, as CI runs it"
	@echo "make test-fast the fast tier: no server, no browser, no sleep (under a minute)"
	@echo "make test-stack / test-slow  the real-stack tier / the slow tier (faults, capacity, timing)"
	@echo "make serve     run the target stack in the foreground (ARGS='--workers 4')"
	@echo "make capacity  per style, the highest load that holds p99 < 250 ms (under 10 minutes)"
	@echo "make ui        the target stack plus Locust's web UI on 127.0.0.1:8089"
	@echo "make bench     routebench's own cost and accuracy, against wrk (bench/results/)"
	@echo "make clean     remove .venv, results/ and generated reports"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The suite's tiers (tests/conftest.py says which test is in which): fast (no server, no browser,
# no sleep), stack (the real stack, Locust, Chromium), slow (fault matrix, capacity, timing).
FAST := not stack and not browser and not slow
# The fast tier shares nothing between tests (no server, no port held, no sleep): one process per
# core. The other tiers run one test at a time: two load tests at once would measure each other.
FAST_PYTEST := $(BIN)/python -m pytest -n 2 -m "$(FAST)"
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Lint, format and type checks first (seconds), then every tier: the fast one first, so a plain
# mistake fails in a minute, not after the real-stack tests.
# Both tiers must run tests: an empty one (pytest's exit 5) fails, as it does in CI. To run a few
# tests, name them to one tier's verb: make test-fast ARGS="tests/analysis -x".
test: lint
	$(FAST_PYTEST) $(ARGS)
	$(BIN)/python -m pytest -m "not ($(FAST))" $(ARGS)

test-fast: $(STAMP)
	$(FAST_PYTEST) $(ARGS)

test-stack: $(STAMP)
	$(BIN)/python -m pytest -m "(stack or browser) and not slow" $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

# The routebench commands are not echoed: ARGS may carry a token (--header 'Authorization: ...').
serve: $(STAMP)
	@$(BIN)/routebench serve $(APP_FLAGS) $(ARGS)

# PROFILE is smoke, default or full, or a path to an experiment TOML file.
loadtest: $(STAMP)
	@$(BIN)/routebench run $(PROFILE) $(APP_FLAGS) $(ARGS)

# The capacity profile (experiments/capacity.toml; with APP, app-capacity.toml: every route of your
# app), or CAPACITY=<profile or TOML file>.
CAPACITY ?= $(if $(APP),app-capacity,capacity)
capacity: $(STAMP)
	@$(BIN)/routebench capacity $(CAPACITY) $(APP_FLAGS) $(ARGS)

ui: $(STAMP)
	@$(BIN)/routebench ui $(APP_FLAGS) $(ARGS)

# Needs wrk (Debian: apt-get install wrk). Model fit reads the latest default run in results/.
bench: $(STAMP)
	$(BIN)/routebench bench $(ARGS)

# Regenerate the pins from what is installed (after changing dependencies in pyproject.toml).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^routebench' > constraints.txt

clean:
	rm -rf $(VENV) results build *.egg-info .pytest_cache
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
