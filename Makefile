# The two commands a new user needs: `make demo` and `make test`. Both bootstrap .venv first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean install uninstall

$(VENV)/.installed: pyproject.toml tools/bootstrap.sh
	@tools/bootstrap.sh
	@touch $@

$(VENV)/.installed-dev: pyproject.toml tools/bootstrap.sh
	@tools/bootstrap.sh dev
	@touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(VENV)/bin/station demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n 2   # both cores (pytest-xdist); one test: $(PY) -m pytest FILE
	$(VENV)/bin/ruff check .

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed-dev
	$(PY) bench/scan_to_permit.py
	$(PY) bench/modbus_rig.py
	$(PY) bench/rs485.py --rigs 1,4,8 --seconds 8
	$(PY) bench/store_commit.py
	$(PY) bench/sync_drain.py
	$(PY) bench/camera_decode.py
	$(PY) bench/web_records.py
	$(PY) bench/screen_latency.py 20
	$(PY) bench/scale.py 12 2   # the 10-minute runs: bench/scale.py 72 10 (see bench/README.md)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# As root on the station box: /opt/station, /etc/station, the units and the user (see
# tools/install.sh). DESTDIR=DIR stages the files under DIR instead and touches nothing else.
install:
	DESTDIR="$(DESTDIR)" tools/install.sh install

uninstall:
	DESTDIR="$(DESTDIR)" tools/install.sh uninstall
