# Two jobs on a fresh machine (see README):
#   make cpu-bench   export SDT + DPT (ViT-S) to ONNX and benchmark them on this CPU with ONNX Runtime
#   make test        the test suite (what CI runs)
# Both create .venv in the repo and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# JetPack 5 ships Python 3.8: the robot-side modules are imported and run under it when one is here.
PY38 ?= $(shell ls -d $$HOME/.pyenv/versions/3.8.*/bin/python3.8 2>/dev/null | tail -n 1)
VENV38 := .venv38
STAMP38 := $(VENV38)/.installed

.PHONY: all setup cpu-bench test test-fast venv38 clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: these wheels (CPU-usable CUDA builds) are the ones on this disk.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[export,ort,cv,plot,dev,ros2]"
	touch $(STAMP)

setup: $(STAMP)

# Python 3.8 with the robot-side dependencies only (no torch), for the 3.8 compatibility test: the
# versions JetPack 5's image has (its pip constraints and requirements: NumPy 1.23.5, not 1.24's break).
JP5_CONSTRAINTS := docker/constraints/jp5.txt
$(STAMP38): pyproject.toml $(JP5_CONSTRAINTS) docker/requirements/runtime.txt
	@if [ -n "$(PY38)" ] && $(PY38) -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then \
		$(PY38) -m venv $(VENV38) && \
		$(VENV38)/bin/pip install -q -c $(JP5_CONSTRAINTS) -r docker/requirements/runtime.txt "typer>=0.9" "rich>=12" && \
		$(VENV38)/bin/pip install -q --no-deps -e . && touch $(STAMP38); \
	else echo "no Python 3.8 here: the 3.8 runtime test will be skipped"; fi

venv38: $(STAMP38)

cpu-bench: $(STAMP)
	$(BIN)/anydepth-edge bench --device cpu --backend ort

test: $(STAMP) venv38
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) $(VENV38) .pytest_cache
