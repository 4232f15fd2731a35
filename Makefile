# Two commands do all set-up:  `make book` builds the executed HTML book;  `make test` runs every test.
# Everything runs inside .venv, made here from requirements.txt on first use.
# The course is tested on Python 3.11; another python3 is used only when 3.11 is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2
SUBMISSIONS ?= submissions
CHAPTER ?=
# CHAPTER=2, 02 or 02_normalization → 02
CHAPTER_NUMBER = $(if $(CHAPTER),$(shell printf '%02d' "$$(expr $(firstword $(subst _, ,$(CHAPTER))) + 0)"))

.PHONY: help install browser book test lab chapters grade timings screenshot clean

help:
	@echo "make book        build the executed book into _build/html (book scale, cached)"
	@echo "make test        run the whole test suite (lint, utils, checks, sync, nbval on every notebook)"
	@echo "make test CHAPTER=02   only chapter 02's tests and notebook (or: pytest -m ex2_4 for one exercise)"
	@echo "make lab         open JupyterLab on chapters/"
	@echo "make chapters    regenerate the student notebooks in chapters/ from solutions/"
	@echo "make grade SUBMISSIONS=dir   grade a folder of submitted notebooks into grades.csv"
	@echo "make timings     re-measure every chapter at book and test scale; rewrites the README table"
	@echo "make screenshot PAGE=01_attention   a PNG of a built chapter page (needs Debian's chromium)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP) browser

# The book's browser test (tests/test_book_browser.py) drives a system Chromium. When none is there and this runs
# as root with apt-get (CI, containers), install Debian's; otherwise the test says how to get one and skips.
browser:
	@if ! for name in chromium chromium-browser google-chrome google-chrome-stable; do command -v $$name; done \
		| grep -q . && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium (apt-get) for the browser test of the book"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "Could not install chromium: the browser test of the book will be skipped"; \
	fi

book: $(STAMP)
	$(BIN)/python -m tools.book_assets
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Open _build/html/index.html"

# The linter, then unit tests, the sync test, the student-notebook test, the grader's tests, the book build, and
# nbval over every solution notebook at test scale; two workers, one notebook per worker at a time (--dist
# loadfile). `make test CHAPTER=02` runs only chapter 02's tests and notebook (its pytest marker, chapter02).
# One PyTorch thread per process (COURSE_THREADS, read by utils.set_threads): the two workers, their notebook kernels
# and the book build share the cores, and several processes each spinning two OpenMP threads on two cores made one
# cell of chapter 02 ~40× slower in CI.
test: $(STAMP) browser
	$(BIN)/ruff check .
	COURSE_THREADS=1 OMP_NUM_THREADS=1 COURSE_SCALE=test $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=120 $(if $(CHAPTER),-m chapter$(CHAPTER_NUMBER)) tests solutions

lab: $(STAMP)
	$(BIN)/jupyter lab chapters/ $(if $(filter 0,$(shell id -u)),--allow-root)  # root: e.g. inside a container

chapters: $(STAMP)
	$(BIN)/python -m tools.make_chapters

grade: $(STAMP)
	$(BIN)/python -m tools.grade $(SUBMISSIONS) --out grades.csv

timings: $(STAMP)
	$(BIN)/python -m tools.timings --write README.md

PAGE ?= 01_attention
screenshot: $(STAMP)
	$(BIN)/python -m tools.screenshot _build/html/solutions/$(PAGE).html _build/$(PAGE).png --height 30000

clean:
	rm -rf _build
