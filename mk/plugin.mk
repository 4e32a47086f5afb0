# QGIS plugin targets (included from the main Makefile).
#   make plugin      -> dist/jess_geo_qgis.zip (QGIS: Plugins > Install from ZIP)
#   make qgis-setup  -> Debian QGIS 3.22 + .venv-qgis (pytest, pytest-qgis, pytest-qt)
#   make test-qgis   -> the plugin tests against the real QGIS, headless

PLUGIN_SRC     := qgis_plugin/jess_geo_qgis
PLUGIN_ZIP     := dist/jess_geo_qgis.zip
QGIS_VENV      := .venv-qgis
QGIS_PYTHON    := $(QGIS_VENV)/bin/python
PLUGIN_FILES   := $(shell find $(PLUGIN_SRC) -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

.PHONY: plugin qgis-setup test-qgis qgis-screenshots

plugin: $(PLUGIN_ZIP)

$(PLUGIN_ZIP): $(PLUGIN_FILES) qgis_plugin/build_zip.py
	python3 qgis_plugin/build_zip.py $@

qgis-setup:
	.ci/qgis_setup.sh

$(QGIS_PYTHON):
	.ci/qgis_setup.sh

test-qgis: $(QGIS_PYTHON)
	QT_QPA_PLATFORM=offscreen HOME=$$(mktemp -d) $(QGIS_PYTHON) -m pytest -p no:cacheprovider tests/qgis $(PYTEST_ARGS)

qgis-screenshots: $(QGIS_PYTHON)
	QT_QPA_PLATFORM=offscreen HOME=$$(mktemp -d) $(QGIS_PYTHON) qgis_plugin/make_screenshots.py
