"""Staff sign-in at /admin/login: password, then TOTP (set up at the first sign-in); sign-out.

The session is renewed at each step and ``login_user`` runs only after the second step, so a
half-signed-in staff member holds nothing but a short-lived "password passed" marker. Contract
admins do not sign in here: the page links them to their portal's sign-in with next=/admin/.
"""
import time

from flask import current_app, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user

from accounts import staff_auth, totp
from accounts.models import Staff
from blueprints.extensions import limiter
from blueprints.web import client_ip, render, safe_next

from . import bp
from .guard import principal

PENDING_SECONDS = 300


def _pending_staff():
    """The staff account whose password passed in this session (for five minutes), or None."""
    staff_id, at = session.get("staff_pending"), session.get("staff_pending_at", 0)
    if not staff_id or time.time() - at > PENDING_SECONDS:
        return None
    staff = Staff.get_or_none(Staff.id == staff_id)
    return staff if staff is not None and not staff.disabled else None


def _finish(staff):
    target = safe_next(session.get("staff_next"), url_for("admin.index"))
    session.clear()
    login_user(staff)
    return redirect(target, 303)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    next_target = safe_next(request.values.get("next"), url_for("admin.index"))
    if request.method != "POST" and principal() is not None:
        from accounts import scope

        if scope.role_of(principal()) is not None:
            return redirect(next_target, 303)
    error = None
    login_id = ""
    if request.method == "POST":
        login_id = (request.form.get("login_id") or "").strip()[:255]
        staff, reason = staff_auth.check_password(
            login_id, request.form.get("password") or "",
            threshold=current_app.config["LOCKOUT_THRESHOLD"], ip=client_ip())
        if staff is not None:
            session.clear()
            session["staff_pending"] = staff.id
            session["staff_pending_at"] = time.time()
            session["staff_next"] = next_target
            if staff.totp_confirmed_at is None:
                # The secret to set up is made by this POST and kept in the server-side session.
                session["staff_totp_secret"] = totp.new_secret()
                return redirect(url_for("admin.login_setup"), 303)
            return redirect(url_for("admin.login_code"), 303)
        # One answer for unknown, wrong, locked and disabled (no password oracle while locked).
        error = _l("The login ID or the password is not correct, or the account is locked for a "
                   "while after too many failed attempts.")
    return render("admin/login.html", status=401 if error else 200, error=error, login_id=login_id,
                  next=next_target,
                  business_signin=f"/business/signin?next={url_for('admin.index')}",
                  sdpf_signin=f"/sdpf/signin?next={url_for('admin.index')}")


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login_code():
    staff = _pending_staff()
    if staff is None or staff.totp_confirmed_at is None:
        return redirect(url_for("admin.login"), 303)
    error = None
    if request.method == "POST":
        if staff_auth.verify_code(staff, request.form.get("code") or "", ip=client_ip()):
            return _finish(staff)
        error = (_l("Too many wrong codes: try again in 15 minutes.") if staff_auth.code_locked(staff)
                 else _l("The code is not correct or was already used. Enter the current code."))
    return render("admin/login_code.html", status=401 if error else 200, error=error)


@bp.route("/login/setup", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login_setup():
    staff = _pending_staff()
    if staff is None or staff.totp_confirmed_at is not None:
        return redirect(url_for("admin.login"), 303)
    secret = session.get("staff_totp_secret")
    if not secret:
        return redirect(url_for("admin.login"), 303)
    error = None
    if request.method == "POST":
        if staff_auth.confirm_setup(staff, secret, request.form.get("code") or "", ip=client_ip()):
            return _finish(staff)
        error = _l("The code is not correct. Check the time of your device and enter the current code.")
        if staff_auth.code_locked(staff):
            error = _l("Too many wrong codes: try again in 15 minutes.")
    uri = staff_auth.setup_uri(staff, secret)
    return render("admin/login_setup.html", status=401 if error else 200, error=error,
                  qr=totp.qr_svg(uri), secret=totp.grouped(secret))


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash(_l("You have signed out."), "ok")
    return redirect(url_for("admin.login"), 303)
