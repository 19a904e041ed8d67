"""The delivery worker waits out a database outage instead of crashing (it crashed on a
PostgreSQL restart: AdminShutdown), and still stops on a real bug."""
import sqlite3

import psycopg
import pytest
from peewee import OperationalError, ProgrammingError

from accounts import outbox
from accounts.db import is_postgres


class Stop(Exception):
    pass


def _outage():
    if is_postgres():
        return OperationalError(psycopg.errors.AdminShutdown("terminating connection due to "
                                                             "administrator command"))
    return OperationalError(sqlite3.OperationalError("database is locked"))


@pytest.fixture
def worker(make_app, monkeypatch):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)
    rounds = []

    def run(script):
        def deliver_due(*args, **kwargs):
            step = script[len(rounds)]
            rounds.append(step)
            if isinstance(step, BaseException):
                raise step
            return step

        monkeypatch.setattr(outbox, "deliver_due", deliver_due)
        monkeypatch.setattr("time.sleep", lambda s: None)
        return app.test_cli_runner().invoke(args=["deliver-mail", "--interval", "0"])

    return run, rounds


def test_the_worker_waits_out_a_database_outage_with_one_line_and_carries_on(worker):
    run, rounds = worker
    sent = {"sent": 3, "retry": 0, "failed": 0}
    result = run([_outage(), _outage(), _outage(), sent, Stop()])
    assert len(rounds) == 5 and isinstance(result.exception, Stop)   # it went on after the outage
    lines = result.output.splitlines()
    assert sum("database unavailable, waiting" in line for line in lines) == 1
    assert any(line.startswith("database back after") for line in lines)
    assert "sent 3, retry 0, failed 0" in lines


def test_the_worker_stops_on_an_error_that_is_not_an_outage(worker):
    run, rounds = worker
    result = run([ProgrammingError(sqlite3.OperationalError("no such table: mail")), Stop()])
    assert len(rounds) == 1 and isinstance(result.exception, ProgrammingError)
