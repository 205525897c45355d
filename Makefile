# Two commands do everything on a fresh machine:
#   make demo   creates .venv, installs refeed, runs the feedback -> DPO -> better-model demo
#   make test   creates .venv, installs refeed with its test extras, runs the whole suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= train,server,dev

.PHONY: demo test test-fast lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install whenever pyproject.toml changes; the stamp keeps repeated `make` calls instant.
$(VENV)/.installed-$(subst ,,$(EXTRAS)): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(subst ,,$(EXTRAS))

demo: install
	$(BIN)/refeed demo

test: install
	bash scripts/test-services.sh $(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not postgres and not browser"

lint: install
	$(BIN)/ruff check refeed tests bench
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
