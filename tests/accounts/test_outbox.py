"""The outbox against a real SMTP server on loopback: nothing lost, nothing sent twice."""
import datetime

import pytest

from accounts import outbox
from accounts.clock import utcnow
from accounts.db import database
from accounts.models import Mail, MailAttempt
from blueprints.extensions import mail as mail_ext


def _deliver(app, now=None):
    with app.app_context():
        return outbox.deliver_due(mail_ext, "no-reply@test.example", now=now)


@pytest.fixture
def smtp_db(smtp_app):
    database.connect(reuse_if_open=True)
    with smtp_app.app_context():
        yield smtp_app


def test_a_queued_mail_arrives_with_its_message_id_and_the_server_answer_is_kept(smtp_db, smtp_server):
    m = outbox.enqueue(recipient="a@example.jp", subject="件名テスト", body_text="本文", kind="test")
    assert _deliver(smtp_db) == {"sent": 1, "retry": 0, "failed": 0}
    got = smtp_server.wait_for(1)
    assert len(got) == 1
    assert got[0]["to"] == ["a@example.jp"]
    assert got[0]["message"]["Subject"] == "件名テスト"
    assert got[0]["message"]["Message-ID"] == m.message_id
    m = Mail.get_by_id(m.id)
    assert m.status == "sent" and m.sent_at is not None
    attempt = MailAttempt.get(MailAttempt.mail == m)
    assert attempt.ok and attempt.smtp_code == 250 and "queued as TEST" in attempt.smtp_answer
    assert _deliver(smtp_db) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(smtp_server.messages) == 1


def test_a_mail_waits_while_the_server_is_down_and_arrives_once_when_it_is_back(smtp_db, smtp_server):
    smtp_server.stop()
    m = outbox.enqueue(recipient="b@example.jp", subject="s", body_text="t", kind="test")
    assert _deliver(smtp_db) == {"sent": 0, "retry": 1, "failed": 0}
    m = Mail.get_by_id(m.id)
    assert m.status == "queued" and m.attempts == 1 and m.next_attempt_at > utcnow()
    assert MailAttempt.get(MailAttempt.mail == m).ok is False
    smtp_server.start()
    # Not due yet: the back-off is respected.
    assert _deliver(smtp_db) == {"sent": 0, "retry": 0, "failed": 0}
    later = utcnow() + datetime.timedelta(minutes=5)
    assert _deliver(smtp_db, now=later) == {"sent": 1, "retry": 0, "failed": 0}
    assert _deliver(smtp_db, now=later) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(smtp_server.wait_for(1)) == 1
    assert Mail.get_by_id(m.id).status == "sent"


def test_a_refused_recipient_fails_at_once_with_the_smtp_answer(smtp_db, smtp_server):
    smtp_server.handler.refuse["gone@example.jp"] = (550, "5.1.1 User unknown")
    bad = outbox.enqueue(recipient="gone@example.jp", subject="s", body_text="t", kind="test")
    good = outbox.enqueue(recipient="ok@example.jp", subject="s", body_text="t", kind="test")
    assert _deliver(smtp_db) == {"sent": 1, "retry": 0, "failed": 1}
    bad = Mail.get_by_id(bad.id)
    assert bad.status == "failed"
    attempt = MailAttempt.get(MailAttempt.mail == bad)
    assert attempt.smtp_code == 550 and "User unknown" in attempt.smtp_answer
    assert Mail.get_by_id(good.id).status == "sent"


def test_a_mail_is_written_in_the_callers_transaction(smtp_db):
    with pytest.raises(RuntimeError):
        with database.atomic():
            outbox.enqueue(recipient="c@example.jp", subject="s", body_text="t", kind="test")
            raise RuntimeError("the change failed")
    assert Mail.select().count() == 0


def test_a_mail_leased_by_one_worker_is_not_taken_by_another(smtp_db, smtp_server):
    outbox.enqueue(recipient="d@example.jp", subject="s", body_text="t", kind="test")
    first = outbox._claim_due(10, utcnow())
    second = outbox._claim_due(10, utcnow())
    assert len(first) == 1 and second == []


def test_retries_stop_after_the_last_back_off_step(smtp_db, smtp_server):
    smtp_server.handler.refuse["e@example.jp"] = (451, "4.3.0 Try again later")
    m = outbox.enqueue(recipient="e@example.jp", subject="s", body_text="t", kind="test")
    now = utcnow()
    for _ in range(len(outbox.RETRY_DELAYS) + 1):
        now += datetime.timedelta(hours=3)
        _deliver(smtp_db, now=now)
    m = Mail.get_by_id(m.id)
    assert m.status == "failed" and m.attempts == len(outbox.RETRY_DELAYS) + 1


def test_a_long_outage_fails_no_mail_and_the_mail_goes_soon_after_the_server_is_back(smtp_db, smtp_server):
    smtp_server.stop()
    m = outbox.enqueue(recipient="f@example.jp", subject="s", body_text="t", kind="test")
    now = utcnow()
    assert not outbox.delivery_delayed()
    for _ in range(100):   # four hours of a server that does not answer, a round every 2-3 minutes
        now += datetime.timedelta(seconds=150)
        assert _deliver(smtp_db, now=now) == {"sent": 0, "retry": 1, "failed": 0}
        assert outbox.delivery_delayed()
    m = Mail.get_by_id(m.id)
    assert m.status == "queued" and m.attempts == 1            # one attempt for the whole outage
    assert MailAttempt.select().where(MailAttempt.mail == m).count() == 1
    assert m.next_attempt_at <= now + datetime.timedelta(seconds=outbox.UNREACHABLE_RETRY)
    smtp_server.start()
    soon = now + datetime.timedelta(seconds=outbox.UNREACHABLE_RETRY)
    assert _deliver(smtp_db, now=soon) == {"sent": 1, "retry": 0, "failed": 0}
    assert len(smtp_server.wait_for(1)) == 1 and not outbox.delivery_delayed()
