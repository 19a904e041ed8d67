"""Signing in through the real pages in Chromium (password, then TOTP), for the browser journeys."""
import pyotp

from accounts.clock import utcnow
from accounts.models import Staff
from accounts.passwords import hasher

PASSWORD = "Console-pass1"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def with_totp(principal, password=PASSWORD, secret=SECRET):
    """Give a staff account or a portal user a known password and a confirmed TOTP."""
    fields = {"password_hash": hasher().hash(password), "totp_secret": secret, "totp_last_step": None}
    if isinstance(principal, Staff):
        fields["totp_confirmed_at"] = utcnow()
    else:
        fields["twostep_method"] = "totp"
    type(principal).update(fields).where(type(principal).id == principal.id).execute()
    return principal


def _code(secret=SECRET):
    return pyotp.TOTP(secret).now()


def staff_sign_in(page, base, login_id, password=PASSWORD, secret=SECRET):
    """/admin/login: password, then the TOTP code."""
    page.goto(base + "/admin/login")
    page.locator("input[name=login_id]").fill(login_id)
    page.locator("input[name=password]").fill(password)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_url("**/admin/login/code")
    page.locator("input[name=code]").fill(_code(secret))
    page.locator("form:has(input[name=code]) button[type=submit]").click()
    page.wait_for_url("**/admin/**")


def portal_sign_in(page, base, portal, login_id, password=PASSWORD, secret=SECRET, next_url="/admin/"):
    """A contract admin signs in through the portal (password, TOTP) and lands on ``next_url``."""
    page.goto(f"{base}/{portal}/signin?next={next_url}")
    page.locator("input[name=login_id]").fill(login_id)
    page.locator("input[name=password]").fill(password)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_url(f"**/{portal}/signin/totp")
    page.locator("input[name=code]").fill(_code(secret))
    page.locator("form:has(input[name=code]) button[type=submit]").click()
    page.wait_for_url(f"{base}{next_url}**")
