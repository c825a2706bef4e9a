# Set-up lives here, not in anyone's shell: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: install demo test test-all lint format browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt setup.py mhd_sim/learning/distillation/_plan_kernel.pyx
	$(PYTHON) -m venv $(VENV)
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[dev]"
	@$(BIN)/python -c "import torch, sys; sys.exit('refusing a CUDA build of torch: ' + torch.__version__ if torch.version.cuda else 0)"
	@! $(BIN)/python -m pip list 2>/dev/null | grep -qi '^nvidia-' || (echo 'CUDA packages were installed; remove $(VENV)'; exit 1)
	touch $@

demo: install  ## install, then run the straggler scenario end to end
	$(BIN)/mhd-sim run scenarios/straggler.yaml --out runs/straggler --overwrite

test: install browser lint  ## install, then lint and the fast lane: every module, minutes
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-all: install browser lint  ## the fast lane and the slow checks (what CI runs)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m ""

lint: install  ## ruff's checks and its format check (part of `make test`)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's format and its safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The report test renders report.html in headless Chromium (Debian's package); where it cannot
# be installed (not root, no apt) that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium could not be installed; the report rendering test will skip"

clean:
	rm -rf $(VENV) runs .pytest_cache
