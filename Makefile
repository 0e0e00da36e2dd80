# Plain verbs. Each one sets up .venv first (created, or refreshed when pyproject.toml or the
# pinned constraints change), then calls the routebench CLI or pytest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Your own app: APP=module:attribute (as for uvicorn), APP_DIR where it imports from, ROUTES a
# routes file (TOML) or LOCUSTFILE your own locustfile. With APP, PROFILE defaults to probe (every
# route alone, then together).
APP ?=
APP_DIR ?=
ROUTES ?=
LOCUSTFILE ?=
PROFILE ?= $(if $(APP),probe,default)
ARGS ?=
APP_FLAGS = $(if $(APP),--app '$(APP)') $(if $(APP_DIR),--app-dir '$(APP_DIR)') $(if $(ROUTES),--routes '$(ROUTES)') \
	$(if $(LOCUSTFILE),--locustfile '$(LOCUSTFILE)')

.PHONY: help test serve loadtest capacity ui bench clean lock

help:
	@echo "make loadtest  run the $(PROFILE) experiment matrix headless and write a report"
	@echo "              APP=module:attribute APP_DIR=DIR: your own app, each route probed and given a verdict"
	@echo "make test      ruff, mypy, then the test suite (real Gunicorn, Locust, PostgreSQL)"
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

# Lint, format and type checks first (seconds), then the suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(ARGS)

serve: $(STAMP)
	$(BIN)/routebench serve $(APP_FLAGS) $(ARGS)

# PROFILE is smoke, default or full, or a path to an experiment TOML file.
loadtest: $(STAMP)
	$(BIN)/routebench run $(PROFILE) $(APP_FLAGS) $(ARGS)

# The capacity profile (experiments/capacity.toml; with APP, app-capacity.toml: every route of your
# app), or CAPACITY=<profile or TOML file>.
CAPACITY ?= $(if $(APP),app-capacity,capacity)
capacity: $(STAMP)
	$(BIN)/routebench capacity $(CAPACITY) $(APP_FLAGS) $(ARGS)

ui: $(STAMP)
	$(BIN)/routebench ui $(APP_FLAGS) $(ARGS)

# Needs wrk (Debian: apt-get install wrk). Model fit reads the latest default run in results/.
bench: $(STAMP)
	$(BIN)/routebench bench $(ARGS)

# Regenerate the pins from what is installed (after changing dependencies in pyproject.toml).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^routebench' > constraints.txt

clean:
	rm -rf $(VENV) results build *.egg-info .pytest_cache
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
