# Stockwire: every target sets itself up (a virtualenv from the locked requirements), so on a
# fresh machine with only Python 3.11+ `make run` and `make test` are all a newcomer types.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAFF_EMAIL ?= staff@stockwire.example
DEMO_STAFF_PASSWORD ?= stockwire-demo

.PHONY: install run test screenshots lint worker beat relay bench clean

$(BIN)/.installed: requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

install: $(BIN)/.installed

# The periodic tasks (unpaid orders expire, the outbox relay, digests) run beside the server in
# `run_periodic`, which stops with it; with a broker configured, run `make worker` and `make beat`.
# `runserver` is Daphne's (it is first in INSTALLED_APPS): HTTP and the live WebSocket endpoints
# from one process.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py demo_staff --email $(DEMO_STAFF_EMAIL) --password $(DEMO_STAFF_PASSWORD)
	$(BIN)/python manage.py run_periodic & periodic=$$!; \
	trap 'kill $$periodic 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

test: install
	$(BIN)/python -m pytest

# docs/admin.md's pictures of the admin (the dashboard, an order's page): the browser tests that
# draw them, saving into docs/ (a plain `make test` saves them in temporary folders and leaves
# the tree as it was).
screenshots: install
	$(BIN)/python -m pytest --screenshots=docs \
		tests/browser/test_admin_browser.py::test_manager_sees_the_dashboard_chart \
		tests/browser/test_order_page_browser.py::test_the_timeline_payments_and_refunds_are_above_the_fold

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

worker: install
	$(BIN)/celery -A config worker --loglevel=INFO

beat: install
	$(BIN)/celery -A config beat --loglevel=INFO --schedule=/tmp/stockwire-celerybeat-schedule

# A listening outbox relay, for OUTBOX_PUBLISH=relay: publishes each task request as its commit
# wakes it (PostgreSQL); otherwise a pass every 5 s, as beat's outbox.relay.
relay: install
	$(BIN)/python manage.py outbox_relay --loop

$(BIN)/.bench-installed: requirements-bench.lock $(BIN)/.installed
	$(BIN)/pip install --quiet --require-hashes -r requirements-bench.lock
	touch $@

bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles .pytest_cache
