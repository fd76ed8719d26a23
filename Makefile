# The two entry points of the README. Both run scripts/setup.sh first (idempotent).
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test lint wheel-check bench

setup:
	./scripts/setup.sh

demo: setup
	$(VENV)/bin/fcap replay

# The whole test suite: lint, unit + live tests (live ones need root and fail,
# never skip, under CI=true), then the wheel built and imported in a clean venv.
test: setup
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest
	./scripts/wheel-check.sh

lint: setup
	$(VENV)/bin/ruff check .

wheel-check: setup
	./scripts/wheel-check.sh

bench: setup
	$(PYTHON) -m pytest tests/bench -s -p no:cacheprovider
