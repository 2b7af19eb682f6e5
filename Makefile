# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench zoo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/digits/train.py
	$(VENV)/bin/edgepack build manifests/digits-cnn.yaml --out dist
	$(PY) examples/digits/demo_device.py dist --name digits-cnn --target rpi4
	$(PY) examples/keras_digits/train.py
	$(VENV)/bin/edgepack build manifests/digits-keras.yaml --out dist
	$(PY) examples/digits/demo_device.py dist --name digits-keras --target rpi4

# ensure-chromium.sh: a headless Chromium for the HTML report tests (installed with apt-get when
# missing and root); `edgepack converters install`: the onnx2tf environment the ONNX -> TFLite
# tests convert with (once: a few minutes, 2.7 GB, in ~/.cache/edgepack/converters; needs a
# Python >= 3.12); `benchmarks/optimum_compare.py --setup`: the Hugging Face Optimum environment the
# Optimum benchmark's smoke test exports with (once: about a minute, 150 MB, in
# ~/.cache/edgepack/bench; it reuses .venv's torch and onnxruntime); `scripts/side_env.py`: the
# KServe SDK's v2 client the serve tests query with (once: about 1.5 minutes, 450 MB, in
# ~/.cache/edgepack/kserve-client) and OpenSSF model_signing, which checks and makes model.sig in
# the signing tests (once: about 30 s, 100 MB, in ~/.cache/edgepack/model-signing). None of them
# fails the run: the tests decide (they fail under CI=true without them)
test: $(STAMP)
	-bash scripts/ensure-chromium.sh
	-bash scripts/ensure-registry.sh
	-$(VENV)/bin/edgepack converters install onnx2tf
	-$(PY) benchmarks/optimum_compare.py --setup
	-$(PY) scripts/side_env.py kserve model-signing
	$(PY) -m pytest

# developer checks: ruff (E, F, I, B, UP) over all Python code, mypy over packager and runtime;
# both at zero findings (.ci/run runs this before the tests)
lint: $(STAMP)
	$(VENV)/bin/ruff check packager runtime tests benchmarks examples scripts zoo
	$(VENV)/bin/mypy

bench: $(STAMP)
	-bash scripts/ensure-registry.sh
	$(PY) examples/digits/train.py
	$(PY) benchmarks/run_all.py --out benchmarks/results.json

# the coverage zoo: every model of zoo/models/ (made in code, nothing downloaded) built for x86-cpu,
# rpi4 and rpi5, every bundle verified (the Pi bundles on the emulated aarch64 too, as root); writes
# zoo/results.json and zoo/scoreboard.md (about an hour on 2 cores). Then `$(PY) zoo/readme_table.py
# --write README.md` renders the README's Model coverage section from it
zoo: $(STAMP)
	-$(VENV)/bin/edgepack converters install onnx2tf
	$(PY) zoo/run.py --jobs 1

clean:
	rm -rf $(VENV) dist .pytest_cache
