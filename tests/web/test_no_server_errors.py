"""Every GET page of the product, as every kind of principal, in both languages and in every
migration phase, answers without a server error (demo data: users in every state).

A page's ``<title>`` holds text only (a block left open once put a whole table there).
Rate limits are off here (later principals would otherwise only ever see 429), and every route
argument has a value: a new route whose argument has none fails until ``_values`` gives one."""
import datetime
import re

import pytest

from accounts import period
from accounts.clock import utcnow
from accounts.demo import load_demo
from accounts.models import Contract, Mail, Staff, TermsVersion, Ticket, TrustedBrowser, User, WebSession
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


def _first_id(model, default=1):
    row = model.select(model.id).order_by(model.id).first()
    return row.id if row is not None else default


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
        "ticket_id": _first_id(Ticket),
        "staff_id": Staff.get(Staff.login_id_key == "helpdesk").id,
        "version": TermsVersion.select().order_by(TermsVersion.version).first().version,
        "session_id": _first_id(WebSession), "browser_id": _first_id(TrustedBrowser),
        "rest": "old/page.html",
    }.get(arg)


def _url(rule) -> str:
    values = {arg: _values(arg) for arg in rule.arguments}
    missing = sorted(arg for arg, value in values.items() if value is None)
    assert not missing, f"{rule.rule}: give {missing} a value in _values (no route is left untried)"
    return rule.build(values, append_unknown=False)[1]


def test_a_route_argument_without_a_value_fails_the_walk(app, db):
    from werkzeug.routing import Map, Rule

    load_demo()
    assert _url(app.url_map._rules_by_endpoint["admin.user_page"][0]).startswith("/admin/users/")
    with pytest.raises(AssertionError, match="give \\['thing'\\] a value"):
        _url(next(Map([Rule("/new/<thing>", endpoint="new")]).iter_rules()))


@pytest.mark.parametrize("phase", ["none", "before", "during", "after"])
def test_no_get_page_answers_a_server_error(make_app, db, phase):
    app = make_app(RATELIMIT_ENABLED=False)
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
                url = _url(rule)
                for headers in ({}, {"HX-Request": "true"}):
                    r = client.get(url, headers=headers)
                    body = r.get_data(as_text=r.mimetype == "text/html")  # streamed CSV runs to its end
                    r.close()
                    assert r.status_code < 500 and r.status_code != 429, \
                        f"{who_name} {lang} {phase} {url} {headers}: {r.status_code}"
                    title = re.search(r"<title>(.*?)</title>", body, re.S) if isinstance(body, str) else None
                    assert title is None or "<" not in title.group(1), f"markup in the <title> of {url}"
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
def test_no_post_answers_a_server_error_to_empty_or_odd_input(make_app, db, junk):
    from tests.helpers import csrf_token

    app = make_app(RATELIMIT_ENABLED=False)
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
            url = _url(rule)
            data = {"csrf_token": token, **{f: JUNK[junk] for f in FIELDS}}
            for headers in ({}, {"HX-Request": "true"}):
                r = client.post(url, data=data, headers=headers)
                r.get_data()
                r.close()
                assert r.status_code < 500 and r.status_code != 429, \
                    f"{who_name} {junk!r} {url} {headers}: {r.status_code}"
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("number", ["²", "①", "４２", "-1", "9" * 40])
def test_numbers_in_links_written_with_other_digits_answer_no_server_error(make_app, db, number):
    """Ids, versions and page marks in query strings (``after``, ``before``, ``version``, ``user``...)
    go through accounts.fields.whole_number: ² or ① would pass str.isdigit and then break int()."""
    app = make_app(RATELIMIT_ENABLED=False)
    load_demo()
    query = "&".join(f"{name}={number}" for name in ("after", "before", "version", "user", "contract",
                                                      "page", "id", "staff", "terms"))
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint != "static"]
    for who in ("operator", "parent_admin"):  # the parent admin owns the demo's bulk upload
        client = app.test_client()
        sign_in(client, _principals()[who])
        for rule in rules:
            url = f"{_url(rule)}?{query}"
            for headers in ({}, {"HX-Request": "true"}):
                r = client.get(url, headers=headers)
                r.get_data()
                r.close()
                assert r.status_code < 500, f"{who} {url} {headers}: {r.status_code}"
