"""What an attacker holds, as test helpers: a password only, a copied cookie, a crafted request."""
import pyotp

from accounts.models import TermsAcceptance, TermsVersion, User
from tests.helpers import gen_contract, gen_user
from tests.web.portal_journey import Portal, ensure_terms

PASSWORD = "Abcdef1!x"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def victim(portal="business", method="totp", **fields) -> User:
    """A user who finished the first login, with a confirmed two-step method and current terms."""
    ensure_terms()
    contract = gen_contract() if portal == "business" else gen_contract(parent=gen_contract())
    extra = {"twostep_method": method}
    if method == "totp":
        extra["totp_secret"] = SECRET
    extra.update(fields)
    user = gen_user(contract, password=PASSWORD, first_login_done=True, **extra)
    TermsAcceptance.create(user=user, terms=TermsVersion.current())
    return user


def totp_now(secret=SECRET, offset=0):
    import time

    return pyotp.TOTP(secret).at(time.time() + offset)


def signed_in(client, user, portal=None) -> Portal:
    """The owner signs in for real: password, then TOTP. (The code's time step is forgotten first,
    so that one test may sign the owner in from several browsers within one 30-second step.)"""
    User.update(totp_last_step=None).where(User.id == user.id).execute()
    p = Portal(client, portal or user.portal)
    p.sign_in(user.login_id, PASSWORD)
    r = p.post("/signin/totp", {"code": totp_now()})
    assert r.status_code == 303 and r.headers["Location"].endswith("/dashboard"), r.headers.get("Location")
    return p


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else ""
