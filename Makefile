# kuryr-cnm: `make up` brings the all-in-one stack up with the plugin serving,
# `make test` runs every test against it (bringing it up first if needed).
SHELL := /bin/bash
VENV ?= .venv
PYTEST ?= $(VENV)/bin/pytest
PYTEST_ARGS ?=
# simulated hypervisors beside the main host (stack/lib/hosts.sh): 1 = the main host alone
HOSTS ?= 1

.PHONY: up down status wipe test test-unit test-integration test-e2e test-multihost test-nested help

help:
	@echo "make up      install and start Neutron/OVN/OVS/MariaDB, dockerd 20.10 + 26 + 28, kuryr-cnm"
	@echo "make up HOSTS=3   also the simulated hypervisors host2 and host3 (aio.sh host-up/host-down/host-kill NAME)"
	@echo "make test    make up, then unit, integration, e2e, multi-host, chaos, fuzz and nested (real VM) tests"
	@echo "make test-nested  nested mode in a real VM alone (QEMU: KVM if a probe boot works, TCG otherwise)"
	@echo "make test-keystone  the same tests, the plugin authenticating through a real Keystone"
	@echo "make status  each piece of the stack up or down"
	@echo "make down    stop everything (data kept); make wipe also deletes the data"

up:
	HOSTS=$(HOSTS) bash stack/aio.sh up

down:
	bash stack/aio.sh down

status:
	bash stack/aio.sh status

wipe:
	bash stack/aio.sh wipe

# tests/chaos and tests/fuzz run a short version of each fault here; `make chaos` the full size
# make test runs the multi-host tests too: the stack brings up host2 and host3 for them
test chaos test-keystone test-multihost: HOSTS = 3
# tests/nested boots one VM (QEMU, TCG here) for its whole module and runs dockerd and kuryr-cnm in it
test: up
	$(PYTEST) tests/unit tests/integration tests/e2e tests/multihost tests/chaos tests/fuzz tests/nested $(PYTEST_ARGS)

test-unit:
	bash stack/aio.sh install
	$(PYTEST) tests/unit $(PYTEST_ARGS)

test-integration: up
	$(PYTEST) tests/integration $(PYTEST_ARGS)

test-e2e: up
	$(PYTEST) tests/e2e $(PYTEST_ARGS)

test-multihost: up
	$(PYTEST) tests/multihost $(PYTEST_ARGS)

test-nested: up
	$(PYTEST) tests/nested $(PYTEST_ARGS)

# Faults, exhaustion and fuzzing at full size (KURYR_CHAOS=full), then the whole suite through
# Keystone; the README's Reliability section gives the last result.
.PHONY: chaos
chaos: up
	KURYR_CHAOS=full $(PYTEST) -s tests/chaos tests/fuzz $(PYTEST_ARGS)  # -s: each test prints its counts
	$(MAKE) test-keystone

# The whole suite with the plugin going through a real Keystone (password auth, 200 s tokens,
# so runs outlive several) to a keystone-auth Neutron API on 127.0.0.1:9697. The stack's plugin
# serves from kuryr-keystone.conf for the run and from kuryr.conf again after it, pass or fail;
# so do the simulated hosts' plugins (the same Keystone user, over the underlay).
KEYSTONE_CONF := /opt/kuryr-cnm/etc/kuryr-keystone.conf
KEYSTONE_ACCESS_LOG := /opt/kuryr-cnm/log/keystone-access.log
.PHONY: test-keystone
test-keystone: up
	bash stack/aio.sh keystone-up
	@trap 'bash stack/aio.sh restart-plugin; bash stack/aio.sh host-plugins-up' EXIT; \
	seen=$$(wc -l < $(KEYSTONE_ACCESS_LOG)); \
	PLUGIN_CONF=$(KEYSTONE_CONF) bash stack/aio.sh restart-plugin && \
	PLUGIN_CONF=$(KEYSTONE_CONF) bash stack/aio.sh host-plugins-up && \
	PLUGIN_CONF=$(KEYSTONE_CONF) KURYR_TEST_CONF=$(KEYSTONE_CONF) $(PYTEST) tests/unit tests/integration tests/e2e tests/multihost tests/chaos tests/fuzz \
		$(PYTEST_ARGS); rc=$$?; \
	echo "Keystone issued $$(tail -n +$$((seen + 1)) $(KEYSTONE_ACCESS_LOG) \
		| grep -c '"POST /v3/auth/tokens HTTP/1.1" 201 .*"kuryr-cnm ') tokens to kuryr-cnm during the run"; \
	exit $$rc

# The benchmark (not a test): kuryr-cnm vs Docker's own drivers and kuryr-libnetwork 18.0.0
# on the local stack; writes bench/results/<date>.json, .md and .png. BENCH_ARGS e.g. --rounds 10.
BENCH_ARGS ?=
.PHONY: bench
bench: up
	$(VENV)/bin/pip install -q -c stack/neutron-venv-constraints.txt -r bench/requirements.txt
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
