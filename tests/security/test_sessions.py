"""SPEC 11.5 (finding 6): sessions live on the server; a copied cookie stops working at sign-out,
at a password change or reset, a two-step reset, a disabled account and an e-mail change; idle and
absolute lifetimes; nothing sensitive in the cookie."""
import datetime

import time_machine

from accounts import console, sessions, tokens
from accounts.clock import utcnow
from accounts.models import Staff, WebSession
from tests.security.attack import PASSWORD, session_cookie, signed_in, totp_now, victim
from tests.web.admin_helpers import sign_in
from tests.web.portal_journey import Portal


def _copy(app, cookie):
    """Another browser holding a copy of the cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def test_the_cookie_holds_only_a_random_key_and_the_row_only_its_hash(client, db):
    user = victim()
    signed_in(client, user)
    value = session_cookie(client)
    assert value.startswith("sid.") and len(value) < 60
    row = WebSession.get(WebSession.principal == f"u:{user.id}")
    assert row.key_hash == sessions.key_hash(value[4:]) and value[4:] not in row.data
    assert row.signed_in and row.user_agent is not None


def test_a_copy_of_the_cookie_stops_working_at_sign_out(app, client, db):
    user = victim()
    p = signed_in(client, user)
    copy = _copy(app, session_cookie(client))
    assert copy.get("/business/dashboard").status_code == 200
    p.signout()
    assert copy.get("/business/dashboard").status_code == 302
    assert not WebSession.select().where(WebSession.principal == f"u:{user.id}").exists()


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, client, db):
    user = victim()
    p = signed_in(client, user)
    elsewhere = app.test_client()
    signed_in(elsewhere, user)
    stolen = _copy(app, session_cookie(elsewhere))
    p.get("/profile")
    r = p.post("/profile/password", {"current": PASSWORD, "password": "Newpass1!x", "confirm": "Newpass1!x"})
    assert r.status_code == 303
    assert client.get("/business/dashboard").status_code == 200
    assert elsewhere.get("/business/dashboard").status_code == 302
    assert stolen.get("/business/dashboard").status_code == 302


def test_a_reset_by_mail_ends_every_session(app, client, db):
    user = victim()
    signed_in(client, user)
    raw = tokens.issue(user, tokens.RESET, 30)
    browser = Portal(app.test_client(), "business")
    browser.get(f"/password/reset/{raw}")
    browser.post(f"/password/reset/{raw}", {"password": "Newpass1!x", "confirm": "Newpass1!x"})
    assert client.get("/business/dashboard").status_code == 302


def test_a_pending_sign_in_of_someone_with_the_password_ends_with_a_reset(app, client, db):
    user = victim()
    attacker = Portal(client, "business")
    attacker.sign_in(user.login_id, PASSWORD)  # password passed, code pending
    from accounts import signin

    signin.set_password(user, "Newpass1!x", actor=user, action="password_set_by_reset")
    assert not WebSession.select().where(WebSession.principal == f"u:{user.id}").exists()
    r = attacker.post("/signin/totp", {"code": totp_now()})
    assert r.status_code == 400  # the session (and its CSRF secret) is gone: the form expired
    assert client.get("/business/dashboard").status_code == 302


def test_console_resets_and_disabling_end_the_users_sessions(app, client, db):
    user = victim()
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    for action in (console.END_SESSIONS, console.RESET_2STEP, console.DISABLE):
        browser = app.test_client()
        signed_in(browser, user) if action != console.DISABLE or not user.disabled else None
        assert browser.get("/business/dashboard").status_code == 200
        console.reset(operator, user.id, action)
        assert browser.get("/business/dashboard").status_code == 302, action
        if action == console.RESET_2STEP:  # set TOTP up again for the next round
            from accounts.models import User
            User.update(twostep_method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                        totp_last_step=None).where(User.id == user.id).execute()


def test_an_email_change_ends_the_other_sessions(app, client, db):
    from accounts import profile

    user = victim()
    p = signed_in(client, user)
    elsewhere = app.test_client()
    signed_in(elsewhere, user)
    raw = tokens.issue(user, tokens.EMAIL_CHANGE, 60, new_email="new@example.jp")
    p.get(f"/profile/email/{raw}")
    p.post(f"/profile/email/{raw}")
    assert client.get("/business/dashboard").status_code == 200
    assert elsewhere.get("/business/dashboard").status_code == 302
    assert profile.confirm_email_change(raw) == "used"


def test_idle_and_absolute_lifetimes(app, client, db):
    user = victim()
    start = datetime.datetime(2026, 11, 20, 9, 0)
    with time_machine.travel(start, tick=False):
        signed_in(client, user)
    for minutes in (20, 40, 60, 80, 100):  # every 20 minutes: never idle for 30
        with time_machine.travel(start + datetime.timedelta(minutes=minutes), tick=False):
            assert client.get("/business/dashboard").status_code == 200
    with time_machine.travel(start + datetime.timedelta(minutes=100 + 31), tick=False):
        assert client.get("/business/dashboard").status_code == 302  # idle for 31 minutes
    with time_machine.travel(start + datetime.timedelta(hours=13), tick=False):
        client2 = app.test_client()
        signed_in(client2, user)
    # absolute lifetime: even a busy session ends after SESSION_MAX_HOURS
    t = start + datetime.timedelta(hours=13)
    for _ in range(12 * 3):
        t += datetime.timedelta(minutes=20)
        with time_machine.travel(t, tick=False):
            ok = client2.get("/business/dashboard").status_code == 200
        if not ok:
            break
    assert t - (start + datetime.timedelta(hours=13)) <= datetime.timedelta(hours=12, minutes=20)
    with time_machine.travel(t, tick=False):
        assert sessions.clean_up(idle_minutes=30, max_hours=12) >= 1


def test_the_profile_lists_sessions_and_signs_out_the_others(app, client, db):
    user = victim()
    p = signed_in(client, user)
    elsewhere = app.test_client()
    signed_in(elsewhere, user)
    html = p.get("/profile").get_data(as_text=True)
    assert "サインイン中のセッション" in html and "このブラウザー" in html
    other_id = WebSession.select().where(WebSession.principal == f"u:{user.id}").order_by(
        WebSession.id.desc()).first().id
    r = p.post(f"/profile/sessions/{other_id}/end")
    assert r.status_code == 303 and elsewhere.get("/business/dashboard").status_code == 302
    signed_in(elsewhere, user)
    p.get("/profile")
    p.post("/profile/sessions/end-others")
    assert elsewhere.get("/business/dashboard").status_code == 302
    assert client.get("/business/dashboard").status_code == 200


def test_staff_see_and_end_their_own_sessions(app, client, db):
    staff = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk", password_hash="x")
    sign_in(client, staff)
    other = app.test_client()
    sign_in(other, staff)
    html = client.get("/admin/sessions").get_data(as_text=True)
    assert "このブラウザー" in html
    from tests.helpers import csrf_token

    client.post("/admin/sessions/end-others", data={"csrf_token": csrf_token(html)})
    assert other.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_totp_secret_being_set_up_never_travels_in_the_cookie(client, db):
    from accounts.models import User
    from tests.helpers import gen_contract, gen_user

    user = gen_user(gen_contract(), password=PASSWORD)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    p.post("/signin/method", {"method": "totp"})
    html = p.get("/signin/totp/setup").get_data(as_text=True)
    import re

    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    cookie = session_cookie(client)
    assert secret not in cookie and cookie.startswith("sid.")
    assert User.get_by_id(user.id).totp_secret is None
    row = WebSession.get(WebSession.principal == f"u:{user.id}")
    assert not row.signed_in and utcnow() - row.created_at < datetime.timedelta(minutes=1)


def test_an_email_corrected_in_the_console_ends_the_users_sessions(app, client, db):
    user = victim()
    signed_in(client, user)
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    with app.app_context():  # mails are rendered
        console.update_field(operator, user.id, "email", "corrected@example.jp", version=user.version)
    assert client.get("/business/dashboard").status_code == 302


def test_answered_identity_requests_are_kept_a_week_only(app, db):
    from accounts import identity_requests
    from accounts.models import IdentityRequest

    old = identity_requests.record_reset("sdpf", {"login_id": "a", "email": "a@example.jp"})
    new = identity_requests.record_reset("sdpf", {"login_id": "b", "email": "b@example.jp"})
    pending = identity_requests.record_reset("sdpf", {"login_id": "c", "email": "c@example.jp"})
    IdentityRequest.update(processed_at=utcnow() - datetime.timedelta(days=8)).where(
        IdentityRequest.id == old.id).execute()
    IdentityRequest.update(processed_at=utcnow()).where(IdentityRequest.id == new.id).execute()
    assert identity_requests.clean_up() == 1
    assert {r.id for r in IdentityRequest.select()} == {new.id, pending.id}
