# Packaging check (included from the main Makefile).
#   make test-installed -> build the sdist and wheel, install the wheel into a fresh venv in a
#                          temporary folder, run tests/test_installed.py against its jess-geo,
#                          then delete that folder.

.PHONY: test-installed

test-installed: $(STAMP)
	@base=$$(mktemp -d -t jess-geo-wheel.XXXXXX) && trap 'rm -rf "$$base"' EXIT && \
	    exe=$$(bash .ci/wheel_venv.sh "$$base" | tail -1) && \
	    JESS_GEO_INSTALLED_EXE=$$exe $(PYTEST) -q tests/test_installed.py $(PYTEST_ARGS)
