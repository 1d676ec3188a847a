# Two commands do everything on a fresh machine:
#   make book   set up the environment, execute every chapter with papermill, build the static site
#   make test   set up the environment, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The environment is rebuilt when the requirements or the package metadata change.
STAMP := $(VENV)/.installed

.PHONY: book chapters site test browser env clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Execute every chapter (notebooks/*.py) into chapters/ with papermill; stops at the first failing cell.
chapters: $(STAMP)
	$(BIN)/python -m qid.chapters.runner

# Build the static site from the executed chapters; warnings are errors. Chapters not executed yet (after
# `python -m qid.chapters.runner --only X`) are shown as their source with a note, so the build still succeeds.
site: $(STAMP)
	$(BIN)/python -m qid.chapters.runner --prepare-site --root .
	$(BIN)/jupyter-book build . -W -n --keep-going

book: chapters
	$(MAKE) site
	@echo "Open _build/html/index.html"

# Headless Chromium (Debian) for the browser check of the built site; installed when missing and possible.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will say so"; \
	  else echo "warning: chromium missing and not installable here; the browser test will say so"; fi; }

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf _build chapters
