# fsbarge: every target creates what it needs (the virtualenv at .venv/) itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint bench bench-smoke faults clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/bootstrap.sh "$(PY)" "$(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[postgresql,test]'
	@touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: install
	$(BIN)/python -m fsbarge.demo

lint: install
	$(BIN)/ruff check fsbarge tests bench
	bash -n scripts/postgres.sh && sh -n scripts/bootstrap.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_architecture.py

bench: install
	$(BIN)/python -m bench.run

# The full fault campaign: 100 SIGKILLs at random points, database locks across them (make test runs 12).
faults: install
	$(BIN)/python -m tests.faults --kills 100

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
