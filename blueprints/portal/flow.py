"""The sign-in state machine kept in the session between the password and the dashboard.

After the password the session is cleared and holds only a pending marker (user, portal, time,
whether the second step is done, where to go afterwards). Each step asks ``next_step`` where to go;
``login_user`` happens only in ``finish``, on a renewed session, once password, second step and
current terms are done (SPEC 5.4).
"""
import time

from flask import current_app, g, redirect, request, session, url_for
from flask_login import login_user

from accounts import signin, terms
from accounts.models import MAIL_OTP, TOTP, User
from blueprints.web import client_ip, safe_next

PENDING = "pending_signin"
PENDING_SECONDS = 15 * 60
TRUST_COOKIE = "trusted_browser_{}"


def trust_cookie_name() -> str:
    return TRUST_COOKIE.format(g.portal)


def start(user: User, next_url: str | None, second_done: bool = False) -> None:
    session.clear()
    g.pop("csrf_token", None)
    session[PENDING] = {"uid": user.id, "portal": user.portal, "at": int(time.time()),
                        "second": second_done, "next": next_url or ""}


def pending() -> dict | None:
    data = session.get(PENDING)
    if not data or data.get("portal") != g.portal or time.time() - data.get("at", 0) > PENDING_SECONDS:
        return None
    return data


def pending_user() -> User | None:
    data = pending()
    if data is None:
        return None
    user = User.get_or_none(User.id == data["uid"])
    if user is None or user.disabled or user.portal != g.portal or user.is_locked():
        return None
    return user


def update(**values) -> None:
    data = dict(session.get(PENDING) or {})
    data.update(values)
    session[PENDING] = data


def next_step(user: User) -> str | None:
    """The endpoint (without portal prefix) of the next sign-in step, or None when all are done."""
    data = pending() or {}
    if not data.get("second"):
        if user.twostep_method == MAIL_OTP:
            return "mail_otp"
        if user.twostep_method == TOTP and user.totp_secret:
            return "totp"
        return "twostep_choose"
    if terms.pending_for(user) is not None:
        return "terms"
    return None


def advance(user: User):
    """Redirect to the next step, or finish the sign-in."""
    step = next_step(user)
    if step is None:
        return finish(user)
    return redirect(url_for(f"{g.portal}.{step}"), 303)


def finish(user: User):
    data = pending() or {}
    target = safe_next(data.get("next"), url_for(f"{g.portal}.dashboard"))
    user = signin.complete_sign_in(user, ip=client_ip())
    session.clear()
    g.pop("csrf_token", None)
    login_user(user)
    return redirect(target, 303)


def second_step_done(user: User, remember: bool):
    """Mark the second step done on a renewed session; remember the browser when asked."""
    data = dict(session.get(PENDING) or {})
    data.update(second=True, at=int(time.time()))
    session.clear()
    g.pop("csrf_token", None)  # the next page gets a token of the new session
    session[PENDING] = data
    response = advance(user)
    if remember:
        from accounts import twostep

        days = current_app.config["TRUSTED_BROWSER_DAYS"]
        raw = twostep.trust_browser(user, days=days, label=(request.user_agent.string or "")[:120],
                                    ip=client_ip())
        response.set_cookie(trust_cookie_name(), raw, max_age=days * 86400, httponly=True,
                            samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"],
                            path=f"/{g.portal}/")
    return response


def lost():
    """The pending sign-in is missing or timed out: back to the sign-in page."""
    from flask import flash
    from flask_babel import gettext as _

    session.pop(PENDING, None)
    flash(_("Your sign-in timed out or was not started. Please sign in again."), "error")
    return redirect(url_for(f"{g.portal}.signin"), 303)
