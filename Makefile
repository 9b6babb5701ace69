# Two commands: `make demo` sets everything up and serves the app on the digits demo;
# `make test` sets everything up and runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# the demo with known defects (duplicates, a leak, blank images, flipped labels): the audit and the data
# browser have findings to show; a browser tab opens only where there is a display (a desktop, macOS)
SHOW := $(if $(DISPLAY)$(WAYLAND_DISPLAY),--show,$(if $(filter Darwin,$(shell uname -s)),--show,))

demo: $(STAMP)
	$(BIN)/workbench serve --defects $(SHOW)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser and not notebook and not slow"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check workbench tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
