# fsbarge: every target creates what it needs (the virtualenv at .venv/) itself.
# `make install` is the administrator's: the runtime and the PostgreSQL driver only, and the systemd
# unit for this checkout. The developers' targets add the test tools (pytest, ruff, greenswitch...).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
UNIT := $(VENV)/fsbarge.service

.PHONY: install test-tools unit test test-realfs realfs-captures demo lint bench bench-smoke faults clean

install: $(STAMP) $(UNIT)

$(STAMP): pyproject.toml
	@scripts/bootstrap.sh "$(PY)" "$(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[postgresql]'
	@touch $(STAMP)

test-tools: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[postgresql,test]'
	@touch $(TEST_STAMP)

# systemd/fsbarge.service with this checkout's paths (the template says /opt/fsbarge)
unit: $(UNIT)

$(UNIT): systemd/fsbarge.service scripts/render-unit.sh | $(STAMP)
	@scripts/render-unit.sh "$(CURDIR)" "$(abspath $(VENV))" systemd/fsbarge.service "$@"

# pytest's exit status 5 is "no tests collected": say so, a run that tested nothing must not look like a crash.
test: test-tools
	@$(BIN)/python -m pytest -q -p no:cacheprovider || { rc=$$?; \
		[ $$rc -ne 5 ] || echo "make test: pytest collected no tests (exit status 5): nothing was tested" >&2; exit $$rc; }

# The integration suite against a real FreeSWITCH (about 2 minutes); fails if none is on PATH.
test-realfs: test-tools
	@command -v freeswitch >/dev/null || { echo "make test-realfs: no freeswitch binary on PATH (see README, Development)"; exit 2; }
	FSBARGE_REQUIRE_FREESWITCH=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/realfs

# Re-record tests/fixtures/realfs-captures from a run of the suite.
realfs-captures: test-tools
	rm -rf tests/fixtures/realfs-captures
	FSBARGE_REQUIRE_FREESWITCH=1 FSBARGE_REALFS_CAPTURES=$(CURDIR)/tests/fixtures/realfs-captures \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/realfs

demo: $(STAMP)
	$(BIN)/python -m fsbarge.demo

lint: test-tools
	$(BIN)/ruff check fsbarge tests bench
	bash -n scripts/postgres.sh && sh -n scripts/bootstrap.sh && sh -n scripts/render-unit.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_architecture.py

bench: test-tools
	$(BIN)/python -m bench.run

# The full fault campaign: 100 SIGKILLs at random points, database locks across them (make test runs 12).
faults: test-tools
	$(BIN)/python -m tests.faults --kills 100

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
