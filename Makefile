# Two commands do all set-up:  `make book` builds the executed HTML book;  `make test` runs every test.
# Everything runs inside .venv, made here from requirements.txt on first use.
# The course is tested on Python 3.11; another python3 is used only when 3.11 is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2
SUBMISSIONS ?= submissions

.PHONY: help install book test lab chapters grade timings screenshot clean

help:
	@echo "make book        build the executed book into _build/html (book scale, cached)"
	@echo "make test        run the whole test suite (utils, checks, sync, nbval on every notebook)"
	@echo "make lab         open JupyterLab on chapters/"
	@echo "make chapters    regenerate the student notebooks in chapters/ from solutions/"
	@echo "make grade SUBMISSIONS=dir   grade a folder of submitted notebooks into grades.csv"
	@echo "make timings     re-measure every chapter at book and test scale; rewrites the README table"
	@echo "make screenshot CHAPTER=01_attention   a PNG of a built chapter page (needs Debian's chromium)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(BIN)/python -m tools.book_assets
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Open _build/html/index.html"

# Unit tests, the sync test, the student-notebook test, the grader's tests, the book build, and nbval over
# every solution notebook at test scale; two workers, one notebook per worker at a time (--dist loadfile).
test: $(STAMP)
	COURSE_SCALE=test $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=120 tests solutions

lab: $(STAMP)
	$(BIN)/jupyter lab chapters/ $(if $(filter 0,$(shell id -u)),--allow-root)  # root: e.g. inside a container

chapters: $(STAMP)
	$(BIN)/python -m tools.make_chapters

grade: $(STAMP)
	$(BIN)/python -m tools.grade $(SUBMISSIONS) --out grades.csv

timings: $(STAMP)
	$(BIN)/python -m tools.timings --write README.md

CHAPTER ?= 01_attention
screenshot: $(STAMP)
	$(BIN)/python -m tools.screenshot _build/html/solutions/$(CHAPTER).html _build/$(CHAPTER).png --height 30000

clean:
	rm -rf _build
