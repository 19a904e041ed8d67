"""The console through the test client: staff sign-in, search, corrections, resets, exports."""
import re
import time

import pyotp
import pytest

from accounts.models import AuditEntry, Contract, Mail, Staff, User
from accounts.staff import create_staff_account
from tests.helpers import csrf_token, gen_user
from tests.web.admin_helpers import make_world, sign_in

pytestmark = pytest.mark.usefixtures("db")

HX = {"HX-Request": "true"}
STAFF_PW = "a-long-staff-password"


def _token(client, path="/"):
    return csrf_token(client.get(path).get_data(as_text=True))


# --- staff sign-in ---------------------------------------------------------------------------

def _password_step(client, login_id="alice", password=STAFF_PW, next_=None):
    data = {"csrf_token": _token(client, "/admin/login"), "login_id": login_id, "password": password}
    if next_:
        data["next"] = next_
    return client.post("/admin/login", data=data)


def test_staff_first_sign_in_sets_up_totp_then_later_sign_ins_ask_the_code(client):
    staff = create_staff_account("alice", "helpdesk", STAFF_PW)
    r = _password_step(client, next_="/admin/audit")
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/login/setup")
    assert client.get("/admin/").status_code == 302  # the password alone opens nothing
    page = client.get("/admin/login/setup").get_data(as_text=True)
    assert "<svg" in page
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    data = {"csrf_token": csrf_token(page), "code": wrong}
    assert client.post("/admin/login/setup", data=data).status_code == 401
    data["code"] = pyotp.TOTP(secret).now()
    r = client.post("/admin/login/setup", data=data)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/audit"
    with client.session_transaction() as s:
        assert s["_user_id"] == f"s:{staff.id}" and "staff_pending" not in s and "staff_totp_secret" not in s
    assert client.get("/admin/").status_code == 200
    assert Staff.get_by_id(staff.id).totp_confirmed_at is not None

    client.post("/admin/logout", data={"csrf_token": _token(client, "/admin/")})
    assert client.get("/admin/").status_code == 302
    r = _password_step(client)
    assert r.headers["Location"].endswith("/admin/login/code")
    used = data["code"]
    r = client.post("/admin/login/code",
                    data={"csrf_token": _token(client, "/admin/login/code"), "code": used})
    assert r.status_code == 401  # a code is not accepted twice
    fresh = pyotp.TOTP(secret).at(time.time() + 30)
    r = client.post("/admin/login/code",
                    data={"csrf_token": _token(client, "/admin/login/code"), "code": fresh})
    assert r.status_code == 303 and client.get("/admin/").status_code == 200
    actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert "staff_totp_set_up" in actions and actions.count("staff_signed_in") == 2


@pytest.mark.parametrize("lang,text", [("ja", "ログインIDまたはパスワードが正しくないか"),
                                       ("en", "The login ID or the password is not correct")])
def test_wrong_password_and_unknown_login_id_get_the_same_answer(client, lang, text):
    create_staff_account("alice", "operator", STAFF_PW)
    client.set_cookie("lang", lang)
    wrong = _password_step(client, password="nope-nope-nope")
    unknown = _password_step(client, login_id="nobody")
    assert wrong.status_code == unknown.status_code == 401
    assert text in wrong.get_data(as_text=True) and text in unknown.get_data(as_text=True)


def test_staff_lockout_answers_the_same_to_the_right_and_a_wrong_password(app, client):
    """SPEC 11.4: while locked, the right password gets exactly the wrong password's answer."""
    app.config["LOCKOUT_THRESHOLD"] = 3
    create_staff_account("alice", "operator", STAFF_PW)
    for _ in range(3):
        _password_step(client, password="wrong-wrong-wrong")
    right = _password_step(client)
    wrong = _password_step(client, password="wrong-wrong-wrong")
    assert right.status_code == wrong.status_code == 401
    text = "ログインIDまたはパスワードが正しくないか"
    assert text in right.get_data(as_text=True) and text in wrong.get_data(as_text=True)
    assert AuditEntry.select().where(AuditEntry.action == "staff_locked").exists()


def test_login_page_links_contract_admins_to_their_portal(client):
    html = client.get("/admin/login").get_data(as_text=True)
    assert "/business/signin?next=/admin/" in html and "/sdpf/signin?next=/admin/" in html


def test_login_never_redirects_off_site(client):
    create_staff_account("alice", "operator", STAFF_PW)
    _password_step(client, next_="https://evil.example/")
    with client.session_transaction() as s:
        assert s["staff_next"] == "/admin/"


# --- search --------------------------------------------------------------------------------

def test_search_answers_a_fragment_to_htmx_and_a_whole_page_otherwise(client):
    w = make_world()
    sign_in(client, w.operator)
    frag = client.get("/admin/?q=target-c", headers=HX)
    assert "<html" not in frag.get_data(as_text=True) and "target-child" in frag.get_data(as_text=True)
    assert "HX-Request" in frag.headers["Vary"]
    page = client.get("/admin/?q=target-c").get_data(as_text=True)
    assert "<html" in page and 'value="target-c"' in page and "target-child" in page
    assert 'hx-push-url="true"' in page and "input changed delay:200ms, search" in page
    restore = client.get("/admin/?q=target-c", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


@pytest.mark.parametrize("lang,text", [("ja", "部分一致検索には3文字以上"), ("en", "at least 3 characters")])
def test_substring_search_asks_for_three_characters(client, lang, text):
    w = make_world()
    sign_in(client, w.operator)
    client.set_cookie("lang", lang)
    assert text in client.get("/admin/?q=ta&match=contains", headers=HX).get_data(as_text=True)


def test_search_pages_keep_the_query_in_their_links(client):
    w = make_world()
    for i in range(30):
        gen_user(w.child, login_id=f"bulk{i:02d}")
    sign_in(client, w.operator)
    html = client.get("/admin/?q=bulk&first_login=pending").get_data(as_text=True)
    assert html.count("bulk") >= 25
    nxt = re.search(r'href="(/admin/\?[^"]*after=\d+[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "q=bulk" in nxt and "first_login=pending" in nxt
    second = client.get(nxt).get_data(as_text=True)
    assert "bulk29" in second and "bulk00" not in second


# --- corrections ---------------------------------------------------------------------------

BAD = [
    ("email", "not-an-address", "name@example.jp のような形式", "like name@example.jp"),
    ("login_id", "a b", "半角の英数字", "half-width characters"),
    ("login_id", "PADMIN", "すでに使われています", "already used"),
    ("name", "", "値を入力してください", "Enter a value"),
    ("name", "末尾 ", "先頭と末尾にスペース", "start or end with a space"),
    ("phone", "12", "4〜32桁の数字", "4-32 digits"),
]


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("field,value,ja,en", BAD)
def test_bad_corrections_are_refused_next_to_the_field(client, lang, field, value, ja, en):
    w = make_world()
    target = w.target_parent  # Business Portal user: same portal as "padmin"
    sign_in(client, w.parent_admin)
    client.set_cookie("lang", lang)
    token = _token(client, f"/admin/users/{target.id}")
    text = ja if lang == "ja" else en
    url = f"/admin/users/{target.id}/fields/{field}"
    plain = client.post(url, data={"csrf_token": token, "value": value, "version": target.version})
    assert plain.status_code == 422 and text in plain.get_data(as_text=True)
    assert 'aria-invalid="true"' in plain.get_data(as_text=True)
    htmx = client.post(url, data={"csrf_token": token, "value": value, "version": target.version}, headers=HX)
    assert htmx.status_code == 200 and htmx.headers["HX-Retarget"] == f"#field-{field}"
    assert text in htmx.get_data(as_text=True)
    inline = client.post(url + "/validate", data={"csrf_token": token, "value": value})
    assert inline.get_data(as_text=True).startswith(text[:4]) or text in inline.get_data(as_text=True)
    assert "<" not in inline.get_data(as_text=True)
    assert User.get_by_id(target.id).version == target.version


def test_inline_validation_answers_nothing_for_a_good_value(client):
    w = make_world()
    sign_in(client, w.parent_admin)
    token = _token(client)
    r = client.post(f"/admin/users/{w.target_child.id}/fields/email/validate",
                    data={"csrf_token": token, "value": "fine@example.jp"})
    assert r.status_code == 200 and r.get_data(as_text=True) == ""


@pytest.mark.parametrize("lang,text", [("ja", "別の管理者がこのユーザーを変更しました"),
                                       ("en", "Someone else changed this user")])
def test_a_stale_edit_is_refused_with_the_current_value_shown(client, lang, text):
    w = make_world()
    sign_in(client, w.parent_admin)
    client.set_cookie("lang", lang)
    target = w.target_child
    token = _token(client, f"/admin/users/{target.id}")
    # Another admin saves first (from a page loaded at the same version).
    other = client.application.test_client()
    sign_in(other, w.child_admin)
    r = other.post(f"/admin/users/{target.id}/fields/email",
                   data={"csrf_token": _token(other), "value": "first@example.jp", "version": target.version})
    assert r.status_code == 303
    for headers, status in ((None, 409), (HX, 200)):
        r = client.post(f"/admin/users/{target.id}/fields/email", headers=headers,
                        data={"csrf_token": token, "value": "second@example.jp", "version": target.version})
        html = r.get_data(as_text=True)
        assert r.status_code == status and text in html and "first@example.jp" in html
    assert User.get_by_id(target.id).email == "first@example.jp"


def test_an_htmx_save_returns_every_field_with_the_new_version(client):
    w = make_world()
    sign_in(client, w.parent_admin)
    target = w.target_child
    edit = client.get(f"/admin/users/{target.id}/fields/name/edit?version={target.version}", headers=HX)
    assert "<html" not in edit.get_data(as_text=True) and 'name="version"' in edit.get_data(as_text=True)
    r = client.post(f"/admin/users/{target.id}/fields/name", headers=HX,
                    data={"csrf_token": _token(client), "value": "佐藤 一郎", "version": target.version})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="identity"' in html
    assert f"version={target.version + 1}" in html and f"version={target.version}\"" not in html
    # the name's spaces are shown visibly
    assert "␣" in html


def test_helpdesk_sends_a_reset_link_but_cannot_edit(client):
    w = make_world()
    sign_in(client, w.helpdesk)
    page = client.get(f"/admin/users/{w.target_child.id}").get_data(as_text=True)
    assert "/fields/email/edit" not in page and "/actions/unlock" not in page
    assert f"/admin/users/{w.target_child.id}/reset-link" in page
    r = client.post(f"/admin/users/{w.target_child.id}/reset-link", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 303
    mail = Mail.get(Mail.kind == "reset")
    assert mail.recipient == "tc@example.jp" and "/sdpf/password/reset/" in mail.body_text
    entry = AuditEntry.get(AuditEntry.action == "reset_link_sent")
    assert entry.actor_label == "staff:hd" and entry.target_user_id == w.target_child.id


def test_a_reset_asks_for_confirmation_first(client):
    w = make_world()
    sign_in(client, w.child_admin)
    User.update(disabled=False).execute()
    confirm = client.get(f"/admin/users/{w.target_child.id}/actions/disable")
    assert confirm.status_code == 200 and 'method="post"' in confirm.get_data(as_text=True)
    assert not User.get_by_id(w.target_child.id).disabled
    client.post(f"/admin/users/{w.target_child.id}/actions/disable",
                data={"csrf_token": csrf_token(confirm.get_data(as_text=True))})
    assert User.get_by_id(w.target_child.id).disabled
    assert client.get(f"/admin/users/{w.target_child.id}/actions/explode").status_code == 404


def test_contact_form_validates_and_logs_the_mail(client):
    w = make_world()
    sign_in(client, w.child_admin)
    url = f"/admin/users/{w.target_child.id}/contact"
    token = _token(client, url)
    r = client.post(url, data={"csrf_token": token, "subject": "", "body": ""})
    assert r.status_code == 422 and "値を入力してください" in r.get_data(as_text=True)
    r = client.post(url, data={"csrf_token": token, "subject": "ご連絡", "body": "初回ログインを"})
    assert r.status_code == 303
    mail = Mail.get(Mail.kind == "contact")
    assert "target-child" in mail.body_text and "/sdpf/" in mail.body_text
    assert "ご連絡" in client.get(f"/admin/users/{w.target_child.id}").get_data(as_text=True)


# --- progress, audit, exports ----------------------------------------------------------------

def test_progress_reads_the_counters_and_exports_csv_with_bom(client):
    w = make_world()
    Contract.update(users_total=1000, users_first_login_done=250).where(Contract.id == w.child.id).execute()
    sign_in(client, w.parent_admin)
    html = client.get("/admin/progress").get_data(as_text=True)
    assert "1000" in html and "250" in html and "750" in html and w.other_child.ecid not in html
    r = client.get("/admin/progress.csv")
    body = r.get_data()
    assert body.startswith("\ufeff".encode()) and r.mimetype == "text/csv"
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0] == ("parent_ecid,contract_ecid,contract_name,users_total,first_login_done,"
                        "first_login_pending")
    assert lines[1] == f"{w.parent.ecid},{w.child.ecid},子契約A1,1000,250,750"


def test_remind_selected_pending_users(client):
    w = make_world()
    sign_in(client, w.parent_admin)
    page = client.get(f"/admin/progress/{w.child.ecid}").get_data(as_text=True)
    assert "target-child" in page and "cadmin" not in page  # done users are not listed
    r = client.post(f"/admin/progress/{w.child.ecid}/remind",
                    data={"csrf_token": csrf_token(page), "user": [str(w.target_child.id)]})
    assert r.status_code == 303
    assert [m.recipient for m in Mail.select().where(Mail.kind == "reminder")] == ["tc@example.jp"]


def test_audit_log_filters_exports_and_stays_in_scope(client):
    w = make_world()
    sign_in(client, w.operator)
    token = _token(client)
    for target, value in ((w.target_child, "Child Name"), (w.target_other, "Other Name")):
        client.post(f"/admin/users/{target.id}/fields/name",
                    data={"csrf_token": token, "value": value, "version": target.version})
    client.post(f"/admin/users/{w.target_child.id}/actions/unlock", data={"csrf_token": token})
    html = client.get("/admin/audit?action=name_changed").get_data(as_text=True)
    assert "Child Name" in html and "Other Name" in html and "unlock" not in html
    sign_in(client, w.child_admin)
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "Child Name" in html and "Other Name" not in html
    csv_text = client.get("/admin/audit.csv").get_data().decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("id,time_jst,actor_kind,actor,action")
    assert "Child Name" in csv_text and "Other Name" not in csv_text


def test_the_console_header_shows_the_phase_and_the_nav_fits_the_role(client):
    w = make_world()
    sign_in(client, w.child_admin)
    html = client.get("/admin/").get_data(as_text=True)
    assert "移行フェーズ" in html and "/admin/progress" not in html and "/admin/audit" in html
    sign_in(client, w.parent_admin)
    assert "/admin/progress" in client.get("/admin/").get_data(as_text=True)
