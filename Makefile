# napari-phase: `make demo` and `make test` set everything up from a fresh clone.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.13.0 has a local CPU build on the project machines; elsewhere the CPU wheel index is used
# so that no multi-GB CUDA build is pulled. Override e.g. `make TORCH_SPEC=torch test`.
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
# napari's canvas needs OpenGL: with no display, scripts/test_display.sh installs Xvfb + Mesa when it
# may (root and apt-get; SYSTEM_DEPS=0 says no) and the tests run under xvfb-run; without it the
# viewer tests are left out with one line saying why (tests/conftest.py).
SYSTEM_DEPS ?= 1

.PHONY: install test demo gui bench samples clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" || $(PY) -m pip install -q torch --index-url $(TORCH_CPU_INDEX)
	$(PY) -m pip install -q -e ".[testing]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	@xrun="$$(SYSTEM_DEPS=$(SYSTEM_DEPS) bash scripts/test_display.sh)"; \
	echo "QT_API=pyqt6 $$xrun $(PY) -m pytest -q $(PYTEST_ARGS)"; \
	eval "QT_API=pyqt6 $$xrun $(PY) -m pytest -q $(PYTEST_ARGS)"

demo: $(VENV)/.installed
	$(VENV)/bin/napari-phase demo --out demo_output

gui: $(VENV)/.installed
	$(VENV)/bin/napari-phase gui

bench: $(VENV)/.installed
	$(VENV)/bin/napari-phase bench --out docs/benchmarks.md

samples: $(VENV)/.installed
	$(PY) sample_data/make_samples.py

clean:
	rm -rf $(VENV) demo_output build dist *.egg-info
