# The README's commands. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo serve test unit unit313 lint bench bench-hearing hearing-corpus clean validate-deploy

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

test: install lint  ## Lint, then every test (they start their own redis-server on loopback).
	bash .ci/ensure-redis
	$(PY) -m pytest

unit: install  ## The socket-free suite (sans-I/O cores, the worker on a simulated clock): seconds.
	$(PY) -m pytest -m "not network" -q

# The same socket-free suite on Python 3.13 (audioop-lts instead of the stdlib audioop).
# pyenv's shim answers `command -v` even when 3.13 is not selected, so each candidate is run.
PY313 ?= $(shell for p in $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null) \
	$$(command -v python3.13); do $$p -c '' 2>/dev/null && echo $$p && break; done)
VENV313 ?= .venv313
$(VENV313)/.installed: pyproject.toml
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install -q --upgrade pip
	$(VENV313)/bin/python -m pip install -q -e '.[test,local]'
	touch $@

unit313: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest -m "not network" -q -p no:cacheprovider

lint: install  ## ruff over everything, and the import rules of the edges.
	$(VENV)/bin/ruff check service tests bench
	$(PY) bench/import_graph.py > /dev/null || $(PY) bench/import_graph.py

validate-deploy:  ## Offline checks of deploy/Dockerfile, docker-compose.yml, deploy/k8s/
	bash .ci/validate-deploy

bench: install
	$(PY) bench/resampler.py

bench-hearing: install  ## Digit accuracy, whole-dialogue success, barge-in and latency tables.
	$(PY) bench/hearing.py
	$(PY) bench/hearing_dialogue.py
	$(PY) bench/barge_in.py
	$(PY) bench/offline_engine.py

hearing-corpus: install  ## Regenerate tests/modelserver/engine/corpus (needs espeak-ng, sox).
	$(PY) bench/make_hearing_corpus.py

clean:
	rm -rf $(VENV) $(VENV313) .pytest_cache .ruff_cache .hypothesis

print-py313:
	@echo $(PY313)
