"""SPEC 11.1 (finding 1, critical): someone who holds only the password cannot replace the owner's
second step: the method choice and set-up pages are closed to a pending sign-in of a user who
already has a method, and the profile's method change asks the current method again."""
import re

import pytest

from accounts.models import Mail, User
from tests.helpers import gen_contract, gen_user
from tests.security.attack import PASSWORD, SECRET, signed_in, totp_now, victim
from tests.web.portal_journey import Portal, otp_from_mail


@pytest.mark.parametrize("method", ["totp", "mail"])
def test_a_pending_sign_in_cannot_choose_or_set_up_another_method(client, db, method):
    user = victim(method=method, is_admin=True)
    own = "/business/signin/totp" if method == "totp" else "/business/signin/mail-otp"
    attacker = Portal(client, "business")
    r = attacker.sign_in(user.login_id, PASSWORD)
    assert r.headers["Location"] == own
    for path in ("/signin/method", "/signin/totp/setup", "/signin/mail-otp/setup"):
        r = attacker.get(path)
        assert r.status_code == 303 and r.headers["Location"] == own, path
    r = attacker.post("/signin/method", {"method": "totp"})
    assert r.status_code == 303 and r.headers["Location"] == own
    r = attacker.post("/signin/method", {"method": "mail"})
    assert r.status_code == 303 and r.headers["Location"] == own
    # The attack of the review: a code from a secret of the attacker's own choosing.
    r = attacker.post("/signin/totp/setup", {"code": totp_now("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")})
    assert r.status_code == 303 and r.headers["Location"] == own
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_method == method and fresh.totp_secret == user.totp_secret
    # Still only "password passed": neither the dashboard nor the console opens.
    assert client.get("/business/dashboard").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_the_backup_code_is_the_only_other_way_and_it_is_single_use(client, db):
    from accounts import twostep

    user = victim()
    codes = twostep.new_backup_codes(user)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/backup-code")
    r = p.post("/signin/backup-code", {"code": codes[0]})
    assert r.headers["Location"].endswith("/business/dashboard")
    p.signout()
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/backup-code")
    assert p.post("/signin/backup-code", {"code": codes[0]}).status_code == 422


def test_the_profile_changes_the_method_only_after_the_current_one_is_checked(client, db):
    user = victim()
    p = signed_in(client, user)
    # Without the re-check: the set-up pages send back to it, and nothing changes.
    assert p.post("/profile/twostep/totp", {"start": "1"}).headers["Location"].endswith("/profile/twostep")
    assert p.post("/profile/twostep/mail", {"start": "1"}).headers["Location"].endswith("/profile/twostep")
    assert Mail.select().where(Mail.kind == "otp").count() == 0
    assert User.get_by_id(user.id).totp_secret == SECRET
    # A wrong code counts as a second-step failure.
    wrong = "000000" if totp_now(offset=30) != "000000" else "111111"
    assert p.post("/profile/twostep", {"code": wrong}).status_code == 422
    assert User.get_by_id(user.id).twostep_failures == 1
    assert p.post("/profile/twostep", {"code": totp_now(offset=30)}).status_code == 303
    html = p.post("/profile/twostep/totp", {"start": "1"}).get_data(as_text=True)
    new_secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    assert new_secret != SECRET and new_secret not in (client.get_cookie("session").value or "")
    p.post("/profile/twostep/totp", {"code": totp_now(new_secret)})
    assert User.get_by_id(user.id).totp_secret == new_secret


def test_a_user_without_a_method_still_chooses_one_at_the_first_login(client, db):
    user = gen_user(gen_contract(), password=PASSWORD)
    p = Portal(client, "business")
    assert p.sign_in(user.login_id, PASSWORD).headers["Location"].endswith("/signin/method")
    r = p.post("/signin/method", {"method": "mail"})
    assert r.headers["Location"].endswith("/signin/mail-otp/setup")
    # The code was queued by that POST, not by opening the page.
    assert Mail.select().where(Mail.kind == "otp").count() == 1
    p.get("/signin/mail-otp/setup")
    p.get("/signin/mail-otp/setup")
    assert Mail.select().where(Mail.kind == "otp").count() == 1
    code = otp_from_mail(Mail.select().where(Mail.kind == "otp").get())
    r = p.post("/signin/mail-otp/setup", {"code": code})
    assert r.status_code == 303 and User.get_by_id(user.id).twostep_method == "mail"
