# The README's two commands are `make run` and `make test`; everything else is for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The test, benchmark and fault-suite processes start subprocesses while gRPC threads run;
# gRPC's fork handlers then crashed forked children now and then (SIGSEGV before their exec).
export GRPC_ENABLE_FORK_SUPPORT := false

.PHONY: run test gen lint clean bench bench-quick chaos cluster soak token flower browser rabbitmq

CLIENT_DIST := distributions/client

# The two distributions, editable: the client first, since the server depends on it and it must
# come from this tree, not from the package index. (The uninstall and rm clear the single
# distribution of a virtual environment made before the split; no-ops otherwise.)
$(INSTALLED): pyproject.toml $(CLIENT_DIST)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes taskscheduler
	rm -rf taskscheduler.egg-info
	$(BIN)/python -m pip install --quiet -e $(CLIENT_DIST)
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $@

# BROKER=rabbitmq: make run, chaos and cluster use RabbitMQ as the broker (an embedded node
# unless BROKER_URL is set), installing Debian's rabbitmq-server when it is missing.
BROKER ?= redis
BROKER_SERVER := $(if $(filter rabbitmq,$(BROKER)),rabbitmq)

## run: the whole stack (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set; BROKER=rabbitmq)
run: $(INSTALLED) $(BROKER_SERVER)
	TASKSCHED_STACK_BROKER=$(BROKER) $(BIN)/python -m taskscheduler.devstack

## test: lint, then the whole suite (unit, integration, end to end) on real servers
test: lint browser rabbitmq
	$(BIN)/python -m pytest

## browser: Debian's chromium, which the dashboard's browser test drives (Playwright)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser:
	@command -v chromium >/dev/null 2>&1 \
	  || $(SUDO) apt-get install -y -q chromium >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null) \
	  || echo "chromium could not be installed: the dashboard's browser test will be skipped"

## rabbitmq: Debian's rabbitmq-server, of which the broker tests run a node of their own
rabbitmq:
	@ls /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server >/dev/null 2>&1 \
	  || $(SUDO) apt-get install -y -q rabbitmq-server >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q rabbitmq-server >/dev/null) \
	  || echo "rabbitmq-server could not be installed: the RabbitMQ broker tests will be skipped"

## token: a bearer token for the stack of `make run` (TENANT=..., SCOPES="tasks:read tasks:write")
TENANT ?= dev
SCOPES ?= tasks:read tasks:write
token: $(INSTALLED)
	@$(BIN)/python -m taskscheduler.tokens --tenant $(TENANT) $(foreach s,$(SCOPES),--scope $(s))

## gen: regenerate the Python code of protos/, and the blocking client from the asyncio one
gen: $(INSTALLED)
	$(BIN)/python -m taskscheduler.devstack.protogen
	$(BIN)/python -m taskscheduler.devstack.syncgen

## bench: every figure beside its baseline, measured in one run (bench/results/bench.json, .png)
bench: $(INSTALLED)
	$(BIN)/python -m bench

## bench-quick: the same sections on small counts, a smoke check (make test runs it)
bench-quick: $(INSTALLED)
	$(BIN)/python -m bench --quick --out $(or $(OUT),bench/results)

## chaos: the fault suite, 3,000 tasks through killed workers, api and dispatcher, broker restarts, PostgreSQL crashes and restarts (BROKER=rabbitmq: on RabbitMQ)
chaos: $(INSTALLED) $(BROKER_SERVER)
	$(BIN)/python -m chaos.suite --tasks 3000 --rate 100 --broker $(BROKER)

## soak: two hours (MINUTES=...) of a steady mix, sampled and plotted (bench/results/soak.png); not part of make test
MINUTES ?= 120
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

## cluster: 2 api, 2 gateways, 2 dispatchers, 3 workers on links that are cut, blackholed and slowed while tasks flow (HOLD=1: stay up afterwards)
cluster: $(INSTALLED) $(BROKER_SERVER)
	$(BIN)/python -m chaos.cluster --tasks 1500 --rate 50 --broker $(BROKER) $(if $(HOLD),--hold)

## flower: Celery's own monitor on the broker of `make run` (http://127.0.0.1:5555)
flower: $(INSTALLED)
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:56379/0} $(BIN)/celery -A services.worker.app flower --address=127.0.0.1 --port=5555

## lint: buf lint, buf breaking against the main branch's protos, ruff and mypy
BREAKING_AGAINST ?= .git\#branch=main
lint: $(INSTALLED)
	$(BIN)/buf lint
	@if git rev-parse --verify -q main >/dev/null; then \
	  echo "buf breaking --against '$(BREAKING_AGAINST)'"; $(BIN)/buf breaking --against '$(BREAKING_AGAINST)'; \
	else echo "no main branch here: buf breaking has nothing to compare against"; fi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) build *.egg-info
