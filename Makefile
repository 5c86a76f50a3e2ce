# `make test` and `make demo` set themselves up: a .venv made with pip, the project installed with its test extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision releases pinned for the install (pip takes them from local files where they are cached)
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

# Debian's chromium for the browser test of the HTML report (under CI=true a missing browser fails that test)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser test demo bench gpu-check clean

$(BIN)/ulsam-search: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/ulsam-search

install: $(BIN)/ulsam-search

browser:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 \
		|| ($(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "chromium could not be installed: the browser test fails under CI=true and is skipped elsewhere"

test: install browser
	$(BIN)/python -m pytest -q

# The quick-start search: a real multi-objective search on digits, about 4 minutes on 2 CPU cores, ending with its
# report in reports/quickstart/ (index.html, pareto.md, PNGs); a second `make demo` continues (or just reports) it.
demo: install
	$(BIN)/ulsam-search variants
	$(BIN)/ulsam-search run search_spaces/quickstart.yaml

bench: install
	$(BIN)/ulsam-search bench

# Every CUDA path once on one GPU (about 8 minutes), recorded in Markdown; refuses without CUDA
GPU_CHECK_OUT ?= gpu-check.md
gpu-check: install
	$(BIN)/python scripts/gpu_check.py --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
