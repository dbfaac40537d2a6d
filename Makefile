# The README's commands. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo serve test lint bench clean validate-deploy

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,local]'
	touch $@

install: $(VENV)/.installed

demo: install  ## The service's main job: the service on loopback plus one softphone call.
	$(PY) -m service demo

serve: install
	$(PY) -m service serve

test: install  ## Lint, then every test (they start their own redis-server on loopback).
	bash .ci/ensure-redis
	$(VENV)/bin/ruff check service tests bench
	$(PY) -m pytest

validate-deploy:  ## Offline checks of deploy/Dockerfile, docker-compose.yml, deploy/k8s/
	bash .ci/validate-deploy

bench: install
	$(PY) bench/resampler.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
