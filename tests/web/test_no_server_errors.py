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


def _upload_id(user):
    """A bulk-correction upload of the demo's parent admin (pages of an upload are its maker's)."""
    from accounts.models import BulkRow, BulkUpload

    admin = User.by_login_id("business", "partner-admin@example.jp")
    upload = BulkUpload.get_or_none((BulkUpload.owner_kind == "user") & (BulkUpload.owner_id == admin.id))
    if upload is None:
        upload = BulkUpload.create(owner_kind="user", owner_id=admin.id, file_name="fix.csv",
                                   encoding="utf-8", columns="login_id,name", rows_total=1, rows_change=1)
        BulkRow.create(upload=upload, line=2, login_id=user.login_id, name="新しい\u3000名前", user=user,
                       user_version=user.version, user_portal=user.portal, current_name=user.name,
                       status="change", changes="name")
    return upload.id


def _values(arg):
    user = User.by_login_id("sdpf", "midori-user2")
    return {
        "upload_id": _upload_id(user),
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


JUNK = {
    "": "",
    "long": "あ" * 300,  # over every field's limit (255 characters at most)
    "odd": "\u3000 ' \" <script>%_\\ ¥ \x7f ①²",
}
FIELDS = ("login_id", "email", "name", "phone", "password", "password_confirm", "current_password",
          "new_password", "code", "value", "version", "subject", "body", "start", "end", "user",
          "contract", "method", "action", "confirmed", "next", "message", "remember", "q",
          "contract_ecid", "account", "back_contract", "new_email", "field", "lang")


@pytest.mark.parametrize("junk", sorted(JUNK))
def test_no_post_answers_a_server_error_to_empty_or_odd_input(app, db, junk):
    from tests.helpers import csrf_token

    load_demo()
    now = utcnow()
    period.set_period(now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    # Sign-out last, so that every other route is tried while signed in.
    rules = sorted((r for r in app.url_map.iter_rules() if "POST" in r.methods),
                   key=lambda r: ("signout" in r.endpoint or "logout" in r.endpoint, r.rule))
    checked = 0
    for who_name, who in _principals().items():
        client = app.test_client()
        sign_in(client, who)
        token = csrf_token(client.get("/").get_data(as_text=True))
        for rule in rules:
            values = {arg: _values(arg) for arg in rule.arguments}
            if any(v is None for v in values.values()):
                continue
            url = rule.build(values, append_unknown=False)[1]
            data = {"csrf_token": token, **{f: JUNK[junk] for f in FIELDS}}
            for headers in ({}, {"HX-Request": "true"}):
                r = client.post(url, data=data, headers=headers)
                r.get_data()
                r.close()
                assert r.status_code < 500, f"{who_name} {junk!r} {url} {headers}: {r.status_code}"
                checked += 1
    assert checked > 100
