# The README's two commands: `make demo` and `make test`. Both create or reuse the virtualenv
# ($(VENV)) and bring up a real local Kafka broker (scripts/kafka-local) unless
# KAFKA_BOOTSTRAP_SERVERS points at one.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tagstream-installed
# The models other than the default, each a distribution of its own (models/*/pyproject.toml)
MODEL_PACKAGES := $(patsubst %,-e models/%,$(notdir $(wildcard models/*)))
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv kafka-jars registry deploy-tools setup test lint unit integration chaos hostile demo bench clean image dist

help:
	@echo "make demo    local Kafka + a worker + a few hundred sentences, then a summary"
	@echo "make test    set-up, then every test (unit, integration on real Kafka, deployment checks)"
	@echo "make unit    the tests that need no broker"
	@echo "make chaos   the fault suite: workers killed, the broker paused and killed, rebalances (~10 min)"
	@echo "make hostile the hostile-input suite: pathological texts, unreadable records, HTTP flood (~2 min)"
	@echo "make bench   speed on this CPU: tagger per path, spaCy NER, end to end, Kafka client"
	@echo "make setup   only the set-up: virtualenv, Kafka jars, helm and the deploy tools"
	@echo "make dist    the release's Python packages in dist/, checked (scripts/dist)"

# The virtualenv, reinstalled when pyproject.toml changes.
$(STAMP): pyproject.toml $(wildcard models/*/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' $(MODEL_PACKAGES)
	@touch $@

venv: $(STAMP)

kafka-jars:
	scripts/kafka-local fetch

# The local Schema Registry's application (Apicurio Registry from Maven Central), after the
# Kafka jars: two Maven runs at once would share ~/.m2.
registry: kafka-jars
	scripts/registry-local fetch

deploy-tools:
	scripts/deploy-tools

# The set-up steps are independent (but for the two Maven fetches): run them side by side.
setup:
	$(MAKE) --no-print-directory -j3 venv registry deploy-tools

test: setup lint
	scripts/with-broker $(PY) -m pytest $(PYTEST_ARGS)

# ruff (pyproject.toml's [tool.ruff]): the checks, and the format (`ruff format .` applies it);
# the layer rules (model never imports worker or Kafka) are tests/test_layers.py.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: venv
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

integration: venv registry
	scripts/with-broker $(PY) -m pytest -m integration $(PYTEST_ARGS)

# The fault suite (tests/faults, marker `faults`; `make test` leaves it out): workers killed
# with kill -9, the broker paused, killed and restarted, groups resized, under a steady stream;
# a line of results per scenario and a table at the end (docs/operations.md, "Fault suite").
# It kills the broker: so a broker of its own (its own state dir), unless KAFKA_BOOTSTRAP_SERVERS
# names one (the broker scenarios then run only if scripts/kafka-local runs it, in
# $$TAGSTREAM_KAFKA_STATE).
chaos: venv kafka-jars
	TAGSTREAM_KAFKA_STATE="$${TAGSTREAM_KAFKA_STATE:-$${TMPDIR:-/tmp}/tagstream-kafka-chaos}" \
		scripts/with-broker $(PY) -m pytest -m faults tests/faults $(PYTEST_ARGS)

# The hostile-input suite (tests/faults/test_hostile.py, part of the fault suite too): one worker
# under a steady stream mixed with pathological texts, huge tokens, unreadable records, header
# floods and a flood of idle HTTP connections; one line of results and the table
# (docs/operations.md, "Hostile-input suite"). It stops no broker: any broker will do.
hostile: venv kafka-jars
	scripts/with-broker $(PY) -m pytest -m faults tests/faults/test_hostile.py $(PYTEST_ARGS)

demo: venv kafka-jars
	$(VENV)/bin/tagstream demo

# The generated tables of docs/configuration.md (from worker/settings/__init__.py and
# worker/settings/kafka.py) and helm/tagstream/README.md (from values.yaml); tests/test_docs.py
# fails when they are stale.
.PHONY: docs
docs: venv
	$(PY) scripts/gen_docs.py

# Speed on this machine (a few minutes; installs spaCy into its own cached virtualenv once).
BENCH_ARGS ?=
bench: venv kafka-jars
	$(PY) scripts/bench.py $(BENCH_ARGS)

# The container image: build ./Dockerfile with buildah (no Docker engine needed), then run it as
# uid 10001 and check it (docs/image.md). Root; slow, so not part of `make test`.
image:
	scripts/image all

# What the release workflow publishes to the package index: the code wheel and sdist and the
# model packages, checked (twine, the code wheel's size, each model package's tagstream range).
dist:
	scripts/dist dist

clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
