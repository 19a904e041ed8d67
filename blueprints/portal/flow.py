"""The sign-in state machine kept in the (server-side) session between the password and the
dashboard.

After the password the session is renewed and holds only a pending marker (user, portal, time,
whether the second step is done, where to go afterwards). Each step asks ``next_step`` where to go;
``login_user`` happens only in ``finish``, on a renewed session, once password, second step and
current terms are done (SPEC 5.4), and only in answer to a POST (SPEC 11.2).

SPEC 11.1: a user who already has a confirmed two-step method can only pass that method (or a
backup code) from a pending sign-in. The method choice and the set-up pages are reachable only
while the user has no method; changing the method is the profile's job, after a full sign-in.
"""
import functools
import time

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_user

from accounts import signin, terms, twostep
from accounts.models import MAIL_OTP, TOTP, User
from blueprints.sessions import write_now as write_session_now
from blueprints.web import client_ip, safe_next

PENDING = "pending_signin"
PENDING_SECONDS = 15 * 60
TRUST_COOKIE = "trusted_browser_{}"


def trust_cookie_name() -> str:
    return TRUST_COOKIE.format(g.portal)


def start(user: User, next_url: str | None, second_done: bool = False) -> None:
    session.clear()  # a new session key: the pre-sign-in cookie opens nothing
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
    if user is None or user.disabled or user.portal != g.portal or signin.password_locked(user):
        return None
    return user


def update(**values) -> None:
    data = dict(session.get(PENDING) or {})
    data.update(values)
    session[PENDING] = data


def has_method(user: User) -> bool:
    """A confirmed two-step method: only that method (or a backup code) passes the second step."""
    return user.twostep_method == MAIL_OTP or (user.twostep_method == TOTP and bool(user.totp_secret))


def own_step(user: User) -> str:
    return "mail_otp" if user.twostep_method == MAIL_OTP else "totp"


def next_step(user: User) -> str | None:
    """The endpoint (without portal prefix) of the next sign-in step, or None when all are done."""
    data = pending() or {}
    if not data.get("second"):
        return own_step(user) if has_method(user) else "twostep_choose"
    if terms.pending_for(user) is not None:
        return "terms"
    return None


def advance(user: User, step: str | None = "?"):
    """Redirect to the next step; when none is left, finish the sign-in, but only from a POST
    (a GET that lands here is sent to the "continue" page, whose button posts)."""
    if step == "?":
        step = next_step(user)
    if step is None:
        if request.method == "POST":
            return finish(user)
        step = "signin_continue"
    return redirect(url_for(f"{g.portal}.{step}"), 303)


def after_password(user: User, trusted: bool):
    """The password was right (POST). A trusted browser with nothing else to do is signed in at
    once (one audit entry for the whole sign-in). When the second step is Mail OTP, this POST
    queues the code (SPEC 11.2: opening the code page never sends one)."""
    step = next_step(user)
    if step is None:
        return finish(user, detail="password + trusted browser")
    signin.password_passed(user, ip=client_ip(), detail="trusted browser" if trusted else None)
    if step == "mail_otp":
        twostep.send_mail_otp(user, config=current_app.config, force=False, ip=client_ip())
    return advance(user, step)


def finish(user: User, detail: str | None = None):
    data = pending() or {}
    target = safe_next(data.get("next"), url_for(f"{g.portal}.dashboard"))
    user = signin.complete_sign_in(user, ip=client_ip(), detail=detail)
    session.clear()
    g.pop("csrf_token", None)
    login_user(user)
    write_session_now()   # in the caller's transaction: the sign-in and its session, or neither
    return redirect(target, 303)


def mark_second_done(user: User) -> None:
    """The second step passed: a renewed session, and the second-step failure count starts again."""
    data = dict(session.get(PENDING) or {})
    data.update(second=True, at=int(time.time()), setup=None, totp_secret=None)
    session.clear()
    g.pop("csrf_token", None)  # the next page gets a token of the new session
    session[PENDING] = data
    signin.twostep_succeeded(user)


def second_step_done(user: User, remember: bool):
    """Mark the second step done and go on; remember the browser when asked."""
    mark_second_done(user)
    response = advance(user)
    if remember:
        days = current_app.config["TRUSTED_BROWSER_DAYS"]
        raw = twostep.trust_browser(user, days=days, label=(request.user_agent.string or "")[:120],
                                    ip=client_ip())
        response.set_cookie(trust_cookie_name(), raw, max_age=days * 86400, httponly=True,
                            samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"],
                            path=f"/{g.portal}/")
    return response


def lost():
    """The pending sign-in is missing or timed out: back to the sign-in page. A GET leaves the
    session as it is (no write); the next sign-in renews it anyway."""
    if request.method == "POST":
        session.pop(PENDING, None)
    flash(_("Your sign-in timed out or was not started. Please sign in again."), "error")
    return redirect(url_for(f"{g.portal}.signin"), 303)


def pending_step(view):
    """Run a sign-in step view with the pending user as its first argument, or send the browser
    back to the sign-in page when there is no pending sign-in."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = pending_user()
        if user is None:
            return lost()
        return view(user, *args, **kwargs)

    return wrapped


def render_continue():
    return render_template("portal/signin_continue.html")
