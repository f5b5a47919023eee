# snnc: `make demo` runs the main job, `make test` the whole suite. Both create .venv themselves.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.snnc-installed
export PYTHONDONTWRITEBYTECODE :=
export MPLBACKEND := Agg

.PHONY: demo test check bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@set -e; PY310=$$(tools/find_python310.sh); \
	  [ -x $(PY) ] || $$PY310 -m venv $(VENV); \
	  $(PY) -m pip install -q --upgrade pip; \
	  $(PY) -m pip install -q -e '.[test]'; \
	  $(PY) -m pip install -q --no-deps lava-dl==0.6.0 opencv-python-headless==4.10.0.84 torchvision==0.29.1 neurobench==2.3.0; \
	  $(PY) -m snnc.backends.sim.warmup
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/digits_conversion.py --out out/demo

test: $(STAMP)
	@bash tools/install_chromium.sh >/dev/null
	$(PY) -m pytest -q

check: $(STAMP)
	PY=$(PY) bash tools/check.sh

bench: $(STAMP)
	@start=$$(date +%s); set -e; \
	  $(PY) benchmarks/bench_sim.py; \
	  $(PY) benchmarks/bench_layer.py --quick; \
	  $(PY) benchmarks/bench_compile.py; \
	  $(PY) benchmarks/bench_guard.py --quick --repeat 3; \
	  echo "make bench: all of benchmarks/ in $$(( $$(date +%s) - start )) s"

clean:
	rm -rf $(VENV) out build *.egg-info
