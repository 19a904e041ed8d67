"""Tenant isolation (SPEC 3, 9): every console route, taken from the URL map, tried as every role
against a user in scope and one out of scope.

Conventions proven here: a signed-out visitor is sent to /admin/login; a signed-in principal who
may not do something, or asks about a user / contract outside its scope, gets 404, exactly like
for something that does not exist (never 403, so nothing is revealed).
"""
import io
import itertools
import re

import pytest

from accounts import audit
from accounts.models import BulkRow, BulkUpload, User
from tests.helpers import csrf_token, gen_user
from tests.web.admin_helpers import make_world, sign_in

pytestmark = pytest.mark.usefixtures("db")

READ, SEND_RESET, EDIT, RESET, CONTACT, REMIND = "read", "send_reset", "edit", "reset", "contact", "remind"
SETTINGS = "settings"
CONTRACT_EDIT, STAFF = "contract_edit", "staff"

# SPEC 3, restated independently of accounts.scope so that a change there has to change this too.
ROLE_MAY = {
    "operator": {READ, SEND_RESET, EDIT, RESET, CONTACT, REMIND, SETTINGS, CONTRACT_EDIT, STAFF},
    "helpdesk": {READ, SEND_RESET},
    "parent_admin": {READ, SEND_RESET, EDIT, RESET, CONTACT, REMIND},
    "child_admin": {READ, SEND_RESET, EDIT, RESET, CONTACT},
    "plain_user": set(),
    "admin_before_first_login": set(),
}

# What each console endpoint needs. A new route fails test_every_console_route_is_listed until added.
REQUIRED = {
    "admin.index": READ,
    "admin.user_page": READ,
    "admin.diagnosis_panel": READ,
    "admin.field_show": READ,
    "admin.field_edit": EDIT,
    "admin.field_validate": EDIT,
    "admin.field_save": EDIT,
    "admin.send_reset_link": SEND_RESET,
    "admin.reset_action": RESET,
    "admin.contact": CONTACT,
    "admin.progress": REMIND,
    "admin.progress_csv": REMIND,
    "admin.progress_contract": REMIND,
    "admin.remind": REMIND,
    "admin.audit_log": READ,
    "admin.audit_csv": READ,
    "admin.settings": SETTINGS,
    "admin.set_migration_period": SETTINGS,
    "admin.notices_list": REMIND,
    "admin.notices_send": REMIND,
    "admin.my_sessions": READ,
    "admin.end_my_session": READ,
    "admin.end_my_other_sessions": READ,
    "admin.contracts": READ,
    "admin.contract_page": READ,
    "admin.contract_rename": CONTRACT_EDIT,
    "admin.contract_admin_grant": CONTRACT_EDIT,
    "admin.contract_admin_revoke": CONTRACT_EDIT,
    "admin.terms_page": SETTINGS,
    "admin.terms_preview": SETTINGS,
    "admin.terms_publish": SETTINGS,
    "admin.terms_version": SETTINGS,
    "admin.staff_list": STAFF,
    "admin.staff_action": STAFF,
    "admin.bulk_page": EDIT,
    "admin.bulk_template": EDIT,
    "admin.bulk_upload": EDIT,
    "admin.bulk_preview": EDIT,
    "admin.bulk_apply": EDIT,
    "admin.bulk_csv": EDIT,
}
PUBLIC = {"admin.login", "admin.login_code", "admin.login_setup", "admin.logout"}

# Answer of an allowed, in-scope request (plain form posts redirect 303 with a flash).
SUCCESS = {
    ("admin.field_show", "GET"): 303,  # without htmx the field alone is not a page: back to the user
    ("admin.field_validate", "POST"): 200,
    ("admin.terms_preview", "POST"): 200,  # shows the text, writes nothing
}

_seq = itertools.count()


def _console_rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]


def test_every_console_route_is_listed_and_guarded(app):
    endpoints = {r.endpoint for r in _console_rules(app)}
    assert endpoints == set(REQUIRED) | PUBLIC, "list the new console route in REQUIRED (or PUBLIC)"
    for endpoint, action in REQUIRED.items():
        view = app.view_functions[endpoint]
        assert getattr(view, "console_action", None) == action, f"{endpoint} is not guarded for {action}"


def _principal(w, role):
    if role == "admin_before_first_login":
        return gen_user(w.child, login_id="pending-admin", is_admin=True)
    if role == "plain_user":
        return w.plain
    return getattr(w, role) if role != "anonymous" else None


def _in_scope(role, which, endpoint=""):
    if role in ("operator", "helpdesk") and not endpoint.startswith("admin.bulk_"):
        return True  # staff see every user; an upload is only ever its maker's
    return which == "in"


def _upload(owner, target):
    """A bulk-correction upload of ``owner`` (in scope: the principal's own; out: someone else's),
    one row correcting the target's name."""
    fields = audit.actor_fields(owner)
    upload = BulkUpload.create(owner_kind=fields["actor_kind"], owner_id=fields["actor_id"] or 0,
                               file_name="fix.csv", encoding="utf-8", columns="login_id,name",
                               rows_total=1, rows_change=1)
    BulkRow.create(upload=upload, line=2, login_id=target.login_id, name=f"名前{next(_seq)}",
                   user=target, user_version=User.get_by_id(target.id).version,
                   user_portal=target.portal, current_name=target.name, status="change", changes="name")
    return upload


def _url(rule, w, which, principal=None):
    values = {}
    target = w.target_child if which == "in" else w.target_other
    for arg in rule.arguments:
        if arg == "upload_id":
            # Uploads belong to their maker: "out of scope" is another principal's upload.
            owner = principal if which == "in" and principal is not None else w.operator
            if which == "out" and principal is w.operator:
                owner = w.parent_admin
            values[arg] = _upload(owner, target).id
        elif arg == "user_id":
            values[arg] = target.id
        elif arg == "field":
            values[arg] = "email"
        elif arg == "action":
            values[arg] = "unlock"
        elif arg == "ecid":
            values[arg] = (w.child if which == "in" else w.other_child).ecid
        elif arg == "session_id":  # one's own sessions only: an unknown id changes nothing
            values[arg] = 999999
        elif arg == "staff_id":
            values[arg] = w.helpdesk.id
        elif arg == "version":
            values[arg] = _terms_version().version
        else:  # pragma: no cover - a new parameter needs a value here
            raise AssertionError(f"no test value for <{arg}> in {rule.rule}")
    return rule.build(values, append_unknown=False)[1], target


def _terms_version():
    from accounts.models import TermsVersion

    return TermsVersion.get_or_none(TermsVersion.version == 1) or TermsVersion.create(
        version=1, title="規約", body="本文")


def _form(endpoint, target, token):
    data = {"csrf_token": token}
    if endpoint == "admin.field_save":
        data.update(value=f"changed{next(_seq)}@example.jp", version=User.get_by_id(target.id).version)
    elif endpoint == "admin.field_validate":
        data.update(value="someone@example.jp")
    elif endpoint == "admin.contact":
        data.update(subject="ご連絡", body="初回ログインをお願いします。")
    elif endpoint in ("admin.remind", "admin.notices_send"):
        data.update(user=[str(target.id)])
    elif endpoint == "admin.set_migration_period":
        data.update(start="2026-12-01T00:00", end="2027-03-31T23:59")
    elif endpoint == "admin.contract_rename":
        data.update(name=f"改名した契約{next(_seq)}")
    elif endpoint == "admin.contract_admin_grant":
        data.update(login_id=target.login_id)
    elif endpoint in ("admin.terms_publish", "admin.terms_preview"):
        data.update(title="カスタマポータル規約", body="第1条 本規約は…")
    elif endpoint == "admin.bulk_upload":
        data.update(file=(io.BytesIO(f"login_id,name\r\n{target.login_id},名前{next(_seq)}\r\n".encode()),
                          "fix.csv"))
    return data


@pytest.mark.parametrize("role", ["operator", "helpdesk", "parent_admin", "child_admin", "plain_user",
                                  "admin_before_first_login", "anonymous"])
def test_every_route_as_every_role_in_and_out_of_scope(app, client, role):
    w = make_world()
    principal = _principal(w, role)
    sign_in(client, principal)
    token = csrf_token(client.get("/").get_data(as_text=True))
    may = ROLE_MAY.get(role, set())
    checked = 0
    for rule in _console_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        targeted = bool(set(rule.arguments) & {"user_id", "ecid", "upload_id"})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for which in (("in", "out") if targeted else ("in",)):
                url, target = _url(rule, w, which, principal)
                r = client.open(url, method=method, data=_form(rule.endpoint, target, token)
                                if method == "POST" else None)
                where = f"{role} {method} {rule.endpoint} ({which} scope): {url}"
                if role == "anonymous":
                    assert r.status_code == 302 and "/admin/login" in r.headers["Location"], where
                elif REQUIRED[rule.endpoint] not in may or not _in_scope(role, which, rule.endpoint):
                    assert r.status_code == 404, where
                else:
                    expected = SUCCESS.get((rule.endpoint, method), 200 if method == "GET" else 303)
                    assert r.status_code == expected, where
                    if not targeted and method == "GET":
                        body = r.get_data(as_text=True)
                        if _in_scope(role, "out"):
                            continue
                        assert w.target_other.login_id not in body, where
                        assert w.other_child.ecid not in body, where
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("role", ["parent_admin", "child_admin"])
def test_search_lists_only_users_in_scope(client, role):
    w = make_world()
    sign_in(client, getattr(w, role))
    html = client.get("/admin/?q=target").get_data(as_text=True)
    assert "target-child" in html and "target-other" not in html
    assert ("target-parent" in html) == (role == "parent_admin")
    html = client.get("/admin/?q=target&match=contains").get_data(as_text=True)
    assert "target-child" in html and "target-other" not in html


def test_a_contract_admin_of_another_tree_gets_404_for_a_user_that_exists(client):
    w = make_world()
    sign_in(client, w.parent_admin)
    assert client.get(f"/admin/users/{w.target_other.id}").status_code == 404
    assert client.get("/admin/users/999999").status_code == 404
    # the two answers are the same page
    a = client.get(f"/admin/users/{w.target_other.id}").get_data(as_text=True)
    b = client.get("/admin/users/999999").get_data(as_text=True)
    # (the CSRF token is signed with the time of the request: not part of the comparison)
    a, b = (re.sub(r'("X-CSRFToken": "|name="csrf_token" value=")[^"]+', r"\1T", page) for page in (a, b))
    assert a.replace(f"/users/{w.target_other.id}", "/users/N") == b.replace("/users/999999", "/users/N")
