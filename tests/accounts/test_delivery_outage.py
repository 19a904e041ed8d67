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
    assert [line for line in lines if "database unavailable, waiting" in line] == [
        "database unavailable, waiting: AdminShutdown: terminating connection due to administrator command"
        if is_postgres() else "database unavailable, waiting: OperationalError: database is locked"]
    assert any(line.startswith("database back after") for line in lines)
    assert any("sent 3, retry 0, failed 0" in line for line in lines)


def test_the_worker_stops_on_an_error_that_is_not_an_outage(worker):
    run, rounds = worker
    result = run([ProgrammingError(sqlite3.OperationalError("no such table: mail")), Stop()])
    assert len(rounds) == 1 and isinstance(result.exception, ProgrammingError)


def test_after_the_outage_the_worker_gives_back_the_leases_of_the_batch_it_cut_short(worker, app_ctx):
    import datetime

    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Mail

    run, rounds = worker
    database.connect(reuse_if_open=True)
    m = outbox.enqueue(recipient="a@example.jp", subject="s", body_text="t", kind="test")
    Mail.update(lease_until=utcnow() + datetime.timedelta(seconds=outbox.LEASE_SECONDS)).execute()
    cut_short = _outage()
    cut_short.claimed_mail_ids = [m.id]
    seen = []

    def script():
        yield cut_short
        seen.append(Mail.get_by_id(m.id).lease_until)   # the next round, once the database is back
        yield {"sent": 0, "retry": 0, "failed": 0}
        yield Stop()

    result = run(_Lazy(script()))
    assert isinstance(result.exception, Stop) and seen == [None]   # not LEASE_SECONDS later


class _Lazy(list):
    """A script whose steps are produced when the worker reaches them."""

    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def __getitem__(self, i):
        while len(self) <= i:
            self.append(next(self.gen))
        return list.__getitem__(self, i)
