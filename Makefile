# Two jobs on a fresh machine (see README):
#   make cpu-bench   export SDT + DPT (ViT-S) to ONNX and benchmark them on this CPU with ONNX Runtime
#   make test        the test suite (what CI runs)
# Both create .venv in the repo and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The robot-side modules are imported and run under each JetPack's Python when one is here
# (tests/test_cli_foundation.py), in a venv with that image's pip constraints and no torch:
# JetPack 5 has Python 3.8 (NumPy 1.23.5, not 1.24's break), JetPack 7.2 Python 3.12.
PY38 ?= $(shell ls -d $$HOME/.pyenv/versions/3.8.*/bin/python3.8 2>/dev/null | tail -n 1)
PY312 ?= $(shell ls -d $$HOME/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null | tail -n 1)

.PHONY: all setup cpu-bench test test-fast venv38 venv312 clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: these wheels (CPU-usable CUDA builds) are the ones on this disk.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[export,ort,cv,plot,dev,ros2,eval,foxglove]"
	touch $(STAMP)

setup: $(STAMP)

# $(1) venv name, $(2) interpreter, $(3) its version, $(4) the JetPack image's pip constraints.
define JETPACK_VENV
$(1)/.installed: pyproject.toml $(4) docker/requirements/runtime.txt
	@if [ -n "$(2)" ] && $(2) -c 'import sys; assert sys.version_info[:2] == tuple(map(int, "$(3)".split(".")))' 2>/dev/null; then \
		$(2) -m venv $(1) && \
		$(1)/bin/pip install -q -c $(4) -r docker/requirements/runtime.txt "typer>=0.9" "rich>=12" && \
		$(1)/bin/pip install -q --no-deps -e . && touch $(1)/.installed; \
	else echo "no Python $(3) here: the $(3) runtime test will be skipped"; fi
endef
$(eval $(call JETPACK_VENV,.venv38,$(PY38),3.8,docker/constraints/jp5.txt))
$(eval $(call JETPACK_VENV,.venv312,$(PY312),3.12,docker/constraints/jp7.txt))

venv38: .venv38/.installed
venv312: .venv312/.installed

cpu-bench: $(STAMP)
	$(BIN)/anydepth-edge bench --device cpu --backend ort

test: $(STAMP) venv38 venv312
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) .venv38 .venv312 .pytest_cache
