# jess-geo: `make demo` runs the main job on the bundled sample data; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean sample-data demo-model

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,onnx,openvino,dask]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p demo_output
	$(BIN)/jess-geo predict sample_data/scene.tif -o demo_output/scene_classes.tif \
	    --vector demo_output/scene_classes.gpkg --probabilities demo_output/scene_probabilities.tif \
	    --energy demo_output/scene_energy.tif --overwrite
	@echo "Outputs are in $(CURDIR)/demo_output/ (class GeoTIFF, GeoPackage polygons, cover table CSV/JSON)."

# Rebuild the shipped demo model from sample_data/ with the project's own trainer.
demo-model: $(STAMP)
	$(BIN)/jess-geo train --config configs/demo_sample.yaml --images sample_data/train/images \
	    --masks sample_data/train/masks --classes sample_data/classes.json --output-dir runs/demo --quiet
	mkdir -p jess_geo/assets
	$(BIN)/python -m jess_geo.models.modelfile runs/demo/model.pt jess_geo/assets/demo_model.pt

# pytest without its cache folder (nothing written into the tree); PYTEST_ARGS adds options,
# e.g. `make test PYTEST_ARGS="-m 'not slow'"`.
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# The engine suite runs in pytest-xdist workers, one per core (TEST_WORKERS=0: one process), each
# test file on one worker (its module fixtures are built once) and one torch thread per worker
# (tests/conftest.py). The QGIS suite stays in one process (one QgsApplication, ended by os._exit).
TEST_WORKERS ?= auto
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# The whole suite: the engine's tests and the pure plugin tests (tests/test_plugin_*.py, no QGIS
# needed) in one run and, beside it, the QGIS plugin's against a real QGIS when one is installed
# (`make qgis-setup` installs Debian's QGIS 3.22; CI always does). The QGIS suite is one process
# that mostly waits for the jess-geo and qgis_process children it starts, so it runs at the same
# time as the engine's, with one torch/OpenMP thread per child like the engine's workers (three
# two-thread pools on two cores spin-wait on each other); its report is kept and printed after
# the engine's. Exit status: non-zero if either failed. tests/test_installed.py runs only when JESS_GEO_INSTALLED_EXE names a wheel
# install's jess-geo (`make test-installed`).
test: $(STAMP)
	@qgis=0; \
	if [ -x /usr/bin/qgis_process.bin ] || /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then \
	    $(MAKE) --no-print-directory $(QGIS_PYTHON) || exit 1; \
	    qgis=1; log=$$(mktemp -t jess-geo-qgis-tests.XXXXXX); \
	    ( OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1} \
	      $(MAKE) --no-print-directory test-qgis > "$$log" 2>&1 ) & qpid=$$!; \
	    echo "QGIS plugin tests started beside the engine's (report below when both end)"; \
	fi; \
	$(PYTEST) -q $(XDIST) tests --ignore=tests/qgis $(PYTEST_ARGS); engine=$$?; \
	plugin=0; \
	if [ $$qgis = 1 ]; then \
	    wait $$qpid; plugin=$$?; \
	    echo "== QGIS plugin tests (real QGIS, headless; exit $$plugin)"; cat "$$log"; rm -f "$$log"; \
	else echo "QGIS is not installed: plugin tests not run (make qgis-setup installs it)"; fi; \
	[ $$engine = 0 ] && [ $$plugin = 0 ]

sample-data: $(STAMP)
	$(BIN)/python sample_data/make_sample_data.py

clean:
	rm -rf $(VENV) build dist *.egg-info demo_output

-include mk/*.mk
