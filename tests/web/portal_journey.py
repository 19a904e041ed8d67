"""A test-client walk through the portal's sign-in steps, shared by the view tests."""
import re

import pyotp

from accounts.models import Mail, TermsVersion
from tests.helpers import csrf_token, links_in, run_worker


def ensure_terms(version=1):
    return TermsVersion.get_or_none(TermsVersion.version == version) or TermsVersion.create(
        version=version, title=f"カスタマポータル規約 第{version}版", body="第1条 本規約は…")


def last_mail(kind=None, recipient=None):
    q = Mail.select().order_by(Mail.id.desc())
    if kind:
        q = q.where(Mail.kind == kind)
    if recipient:
        q = q.where(Mail.recipient == recipient)
    return q.first()


def otp_from_mail(mail) -> str:
    return re.search(r"^\s+(\d{6})\s*$", mail.body_text, re.M).group(1)


class Portal:
    """Drives one portal through the test client, keeping the CSRF token of the last page."""

    def __init__(self, client, portal):
        self.c, self.portal = client, portal
        self.token = None

    def url(self, path):
        return f"/{self.portal}{path}"

    def get(self, path, **kw):
        r = self.c.get(self.url(path) if path.startswith("/") and not path.startswith(f"/{self.portal}")
                       else path, **kw)
        if r.status_code == 200 and "csrf" in r.get_data(as_text=True).lower():
            self.token = csrf_token(r.get_data(as_text=True))
        return r

    def post(self, path, data=None, **kw):
        if self.token is None:
            self.get("/signin")
        data = dict(data or {})
        data.setdefault("csrf_token", self.token)
        target = self.url(path) if not path.startswith(f"/{self.portal}/") else path
        r = self.c.post(target, data=data, **kw)
        html = r.get_data(as_text=True)
        if 'name="csrf_token"' in html:
            self.token = csrf_token(html)
        self.landed = None
        if r.status_code in (302, 303) and r.headers["Location"].startswith("/"):
            # Like a browser: load the next page (a renewed session has a new CSRF token).
            self.landed = (r.headers["Location"], self.get(r.headers["Location"]))
        return r

    def request_reset(self, **identity):
        """The identity check as a user sends it, then the worker's round that answers it."""
        self.get("/password/reset")
        response = self.post("/password/reset", identity)
        run_worker(self.c.application)
        return response

    def reset_link(self, user) -> str:
        mail = last_mail("reset", user.email)
        return next(link for link in links_in(mail.body_text) if "/password/reset/" in link)

    def set_password(self, link, password):
        path = link.split("localhost", 1)[1]
        self.get(path)
        return self.post(path, {"password": password, "confirm": password})

    def sign_in(self, login_id, password, next_url=""):
        self.get("/signin")
        return self.post("/signin", {"login_id": login_id, "password": password, "next": next_url})

    def follow(self, response):
        location = response.headers["Location"]
        if getattr(self, "landed", None) and self.landed[0] == location:
            return self.landed[1]
        return self.get(location)

    def totp_code(self, secret, offset=0):
        import time

        return pyotp.TOTP(secret.replace(" ", "")).at(time.time() + offset)

    def signout(self):
        """Sign out as a browser would: from a page of the signed-in session."""
        self.get("/dashboard")
        return self.post("/signout")
