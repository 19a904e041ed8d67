"""Setting and removing the migration period is one domain function each (accounts.period.change /
remove), used by ``flask migration-period`` and the console's settings page alike."""
import datetime

import pytest

from accounts import period
from accounts.models import AuditEntry, MigrationPeriod, Staff

START = datetime.datetime(2026, 11, 30, 15, 0)
END = datetime.datetime(2027, 3, 31, 14, 59)


def test_change_stores_the_period_and_audits_old_and_new_in_one_go(db):
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    period.change(operator, START, END, ip="192.0.2.1")
    first = AuditEntry.get(AuditEntry.action == "migration_period_set")
    assert first.old_value is None and "2026-12-01 00:00 JST" in first.new_value
    assert first.actor_label == "staff:op" and first.ip == "192.0.2.1"
    assert MigrationPeriod.get_by_id(1).updated_by == "op"
    period.change("cli", START, END + datetime.timedelta(days=1))
    second = AuditEntry.select().order_by(AuditEntry.id.desc()).first()
    assert second.old_value == first.new_value and second.actor_label == "cli"
    assert MigrationPeriod.get_by_id(1).updated_by == "cli"


def test_a_refused_period_writes_nothing(db):
    with pytest.raises(period.PeriodError):
        period.change("cli", END, START)
    assert not MigrationPeriod.select().exists() and not AuditEntry.select().exists()


def test_remove_audits_the_old_period_and_says_so_when_there_was_none(db):
    assert period.remove("cli") is None
    assert AuditEntry.get(AuditEntry.action == "migration_period_cleared").old_value is None
    period.change("cli", START, END)
    old = period.remove("cli")
    assert old == period.Period(START, END) and period.current() is None
    last = AuditEntry.select().order_by(AuditEntry.id.desc()).first()
    assert last.action == "migration_period_cleared" and "2026-12-01 00:00 JST" in last.old_value


def test_the_command_sets_and_removes_through_the_domain_functions(runner, db, monkeypatch):
    calls = []
    monkeypatch.setattr(period, "change", lambda actor, *a, **k: calls.append(("change", actor)))
    monkeypatch.setattr(period, "remove", lambda actor, **k: calls.append(("remove", actor)))
    runner.invoke(args=["migration-period", "--start", "2026-12-01T00:00", "--end", "2027-03-31T23:59"])
    runner.invoke(args=["migration-period", "--clear"])
    assert calls == [("change", "cli"), ("remove", "cli")]
