# The two commands: `make run` (set up and serve on SQLite with demo data), `make test` (whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# make run and make test are development (SPEC 11.7): a generated secret key, /dev/mail, loopback hosts.
export APP_ENV ?= development
FLASK := $(VENV)/bin/flask --app app
PORT ?= 5000
AREAS := $(wildcard translations/*)

.PHONY: run test install translations db demo serve bench lint clean

run: install translations db demo serve

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

translations: install
	@for d in $(AREAS); do $(VENV)/bin/pybabel compile -f -d $$d >/dev/null || exit 1; done

db: install
	$(FLASK) db-upgrade

demo: install
	$(FLASK) demo --if-empty

serve:
	@$(PY) -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
	  r=s.connect_ex(('127.0.0.1', $(PORT))); sys.exit(0 if r else 1)" || \
	  { echo "Port $(PORT) is busy: stop what uses it or run 'make run PORT=5001'."; exit 1; }
	DELIVER_MAIL_IN_PROCESS=1 $(FLASK) run --host 127.0.0.1 --port $(PORT)

test: install translations
	$(VENV)/bin/pytest

bench: install translations
	@echo "see README, section Benchmarks"

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) instance/portal.db*
