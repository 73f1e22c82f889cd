# The two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-default test-scaleout test-browser lint format bench \
	bench-frames install clean

# A local run: embedded defaults (SQLite, in-memory channel layer), DEBUG on.
# --noreload: daphne then handles SIGINT/SIGTERM itself and closes every socket
# with `bye` + 1012 instead of dropping it.
run: export DJANGO_DEBUG ?= 1
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createboard demo --title "Demo board" --exist-ok
	@echo "Open http://$(HOST):$(PORT)/ - WebSocket: ws://$(HOST):$(PORT)/ws/boards/demo/"
	exec $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

# Everything the tests need, then the whole suite: once on the embedded
# defaults, once on PostgreSQL + Redis (throwaway servers on loopback). The
# browser tests (tests/browser/, Debian's Chromium driven by Playwright) run in
# both passes: the second is the production setup, where the page's ops cross
# Redis and PostgreSQL. Screenshots and server logs land in artifacts/browser/.
test: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=config.test_settings
	$(MAKE) test-default
	$(MAKE) test-scaleout

test-default: $(VENV)/.dev
	$(BIN)/python -m pytest

test-scaleout: $(VENV)/.dev
	scripts/with-services.sh $(BIN)/python -m pytest

# The browser tests alone, on the embedded defaults.
test-browser: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/python -m pytest tests/browser

bench: $(VENV)/.dev
	$(BIN)/python bench/run.py

# Frame times of panning and zooming a 10,000-element board in headless Chromium.
bench-frames: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/python bench/frames.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

install: $(VENV)/.dev

$(VENV)/.runtime: requirements.txt
	scripts/system-deps.sh run
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles artifacts
