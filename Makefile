# The two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run run-multi test test-default test-default-then-smoke test-scaleout test-browser bench-smoke lint format \
	js-lint js-test js-format bench bench-frames soak install clean

# A local run: embedded defaults (SQLite, in-memory channel layer), DEBUG on.
# --noreload: daphne then handles SIGINT/SIGTERM itself and closes every socket
# with `bye` + 1012 instead of dropping it.
run: export DJANGO_DEBUG ?= 1
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createboard demo --title "Demo board" --exist-ok
	@echo "Open http://$(HOST):$(PORT)/ and draw on http://$(HOST):$(PORT)/b/demo/"
	exec $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

# One daphne per core (WORKERS=N for another count) on loopback ports PORT+1...,
# behind nginx on $(HOST):$(PORT) (least_conn), with Redis (a throwaway
# redis-server unless REDIS_URL is set) and DATABASE_URL or the SQLite file of
# `make run`. Ctrl+C stops the daphnes first (bye + 1012), then nginx and Redis.
# scripts/run-multi.py does it all; docs/deploy.md, "One daphne per core".
WORKERS ?= $(shell nproc)
run-multi: export DJANGO_DEBUG ?= 1
run-multi: $(VENV)/.runtime
	exec $(BIN)/python scripts/run-multi.py --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Everything the tests need, then the whole suite: once on the embedded
# defaults, once on PostgreSQL + Redis (throwaway servers on loopback). The
# browser tests (tests/browser/, Debian's Chromium driven by Playwright) run in
# both passes: the second is the production setup, where the page's ops cross
# Redis and PostgreSQL. Screenshots and server logs land in artifacts/browser/.
# The passes share nothing (each has its own databases, Redis servers, ports and
# temporary folders), so they run side by side: about 14 minutes on 2 cores
# with the bench smoke run, instead of 26 one after the other.
test: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory js-lint js-test
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=config.test_settings
	@echo "The two passes run side by side; each one's output appears when it ends."
	$(MAKE) -j2 --output-sync=target test-default-then-smoke test-scaleout

# The SQLite pass ends first; the bench smoke run takes its place beside the
# other pass instead of waiting for it.
test-default-then-smoke: $(VENV)/.dev
	$(MAKE) test-default
	$(MAKE) bench-smoke

# The bench smoke test starts its own PostgreSQL, Redis and nginx, so it runs
# once, on its own, rather than in both passes.
# TEST_PORT_RANGE: each pass starts its servers on ports of its own (tests/live.py).
test-default: $(VENV)/.dev
	TEST_PORT_RANGE=20000-25999 $(BIN)/python -m pytest --durations=15 --ignore=tests/test_bench_smoke.py

# Tests marked `standalone` start every server they need themselves, so the
# second pass would only repeat them: they run in the first.
test-scaleout: $(VENV)/.dev
	TEST_PORT_RANGE=26000-31999 scripts/with-services.sh $(BIN)/python -m pytest --durations=15 --ignore=tests/test_bench_smoke.py -m "not standalone"

# The browser tests alone, on the embedded defaults.
test-browser: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/python -m pytest tests/browser

# Every bench scenario at a tiny size, against ours and the baseline:
# correctness only (all delivered, in order, acked), never timing.
bench-smoke: $(VENV)/.dev
	$(BIN)/python -m pytest tests/test_bench_smoke.py

# The full bench (docs/performance.md), e.g.
#   make bench BENCH_ARGS="--scenarios busy,idle --runs 3"
BENCH_ARGS ?=
bench: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# 2,000 connections for 10 minutes, drawing and reconnecting: RSS and open file
# descriptors must stay flat (bench/soak.py; not part of make test).
SOAK_ARGS ?=
soak: $(VENV)/.dev
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Frame times of panning and zooming a 10,000-element board in headless Chromium.
bench-frames: $(VENV)/.dev
	scripts/system-deps.sh test
	$(BIN)/python bench/frames.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory js-lint

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(MAKE) --no-print-directory js-format

# The page's JavaScript (static/whiteboard/js/) and its unit tests (tests/js/):
# Biome lints and formats them (biome.json), Node's own test runner runs the
# tests. Biome is the one npm package, pinned in package-lock.json and installed
# into ./node_modules; Node 18 or newer (Debian's nodejs) runs everything.
JS_DIRS := static/whiteboard/js tests/js
BIOME := node_modules/.bin/biome

# Lint and format check; any finding fails, warnings too (as ruff's do).
js-lint: node_modules/.package-lock.json
	$(BIOME) ci --error-on-warnings --colors=off $(JS_DIRS)

js-test: node_modules/.package-lock.json
	node --test --test-reporter=spec tests/js/*.test.mjs

# Formats, sorts imports and applies Biome's safe fixes, like `ruff format` + `ruff check --fix`.
js-format: node_modules/.package-lock.json
	$(BIOME) check --write $(JS_DIRS)

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

# npm writes node_modules/.package-lock.json on every install: the stamp.
node_modules/.package-lock.json: package.json package-lock.json
	scripts/system-deps.sh js
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache staticfiles artifacts
