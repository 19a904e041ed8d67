"""Every GET page of the product, as every kind of principal, in both languages and in every
migration phase, answers without a server error (demo data: users in every state)."""
import datetime

import pytest

from accounts import period
from accounts.clock import utcnow
from accounts.demo import load_demo
from accounts.models import Contract, Mail, Staff, Ticket, User
from tests.web.admin_helpers import sign_in


def _principals():
    return {
        "anonymous": None,
        "operator": Staff.get(Staff.login_id_key == "operator"),
        "helpdesk": Staff.get(Staff.login_id_key == "helpdesk"),
        "parent_admin": User.by_login_id("business", "partner-admin@example.jp"),
        "child_admin": User.by_login_id("sdpf", "midori-admin"),
        "business_user": User.by_login_id("business", "native-user@example.jp"),
        "pending_user": User.by_login_id("sdpf", "aoba-user1"),
    }


def _values(arg):
    user = User.by_login_id("sdpf", "midori-user2")
    return {
        "user_id": user.id, "field": "email", "action": "unlock", "code": "en",
        "ecid": Contract.get(Contract.parent.is_null(False)).ecid,
        "mail_id": Mail.select().first().id, "token": "not-a-token", "filename": "app.css",
        "ticket_id": Ticket.select().first().id if Ticket.select().exists() else 1,
    }.get(arg)


@pytest.mark.parametrize("phase", ["none", "before", "during", "after"])
def test_no_get_page_answers_a_server_error(app, db, phase):
    load_demo()
    now = utcnow()
    if phase != "none":
        start = {"before": now + datetime.timedelta(days=3), "during": now - datetime.timedelta(days=3),
                 "after": now - datetime.timedelta(days=60)}[phase]
        period.set_period(start, start + datetime.timedelta(days=30))
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint != "static"]
    checked = 0
    for who_name, who in _principals().items():
        for lang in ("ja", "en"):
            client = app.test_client()
            sign_in(client, who)
            client.set_cookie("lang", lang)
            for rule in rules:
                values = {arg: _values(arg) for arg in rule.arguments}
                if any(v is None for v in values.values()):
                    continue
                url = rule.build(values, append_unknown=False)[1]
                for headers in ({}, {"HX-Request": "true"}):
                    r = client.get(url, headers=headers)
                    r.get_data()  # streamed answers (CSV) run to their end
                    r.close()
                    assert r.status_code < 500, f"{who_name} {lang} {phase} {url} {headers}: {r.status_code}"
                    checked += 1
    assert checked > 500
