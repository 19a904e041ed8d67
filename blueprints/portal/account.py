"""The signed-in user's pages: dashboard and profile (password, e-mail, two-step method with a
re-check of the current one, backup codes, remembered browsers, active sessions)."""
import time

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_user

from accounts import fields, passwords, profile, scope, sessions, signin, tokens, totp
from accounts import twostep as ts
from accounts.models import MAIL_OTP, TOTP, Service, User
from blueprints.extensions import limiter
from blueprints.sessions import current_session_id
from blueprints.web import base_url, client_ip, render

from .auth import MAX_PASSWORD, faq_url_for, password_errors, rules_for
from .guard import portal_login_required, portal_user

REAUTH = "twostep_reauth_at"
PROFILE_TOTP = "profile_totp_secret"


@portal_login_required
def dashboard_view():
    user = portal_user()
    services = list(Service.select().where(Service.contract == user.contract_id).order_by(Service.name))
    from accounts.contracts import help_contacts

    return render("portal/dashboard.html", user=user, services=services,
                  console=scope.role_of(user) is not None, help=help_contacts(user),
                  faq_url=faq_url_for(user.portal))


def _live_sessions(user):
    return sessions.active(user, idle_minutes=current_app.config["SESSION_IDLE_MINUTES"],
                           max_hours=current_app.config["SESSION_MAX_HOURS"])


def _profile(user, status=200, **context):
    context.setdefault("errors", {})
    return render("portal/profile.html", status=status, user=user,
                  browsers=ts.trusted_browsers(user), backup_left=ts.backup_codes_left(user),
                  rules=rules_for(user.portal, ""), symbols=passwords.SYMBOLS[user.portal],
                  web_sessions=_live_sessions(user), current_session=current_session_id(),
                  browser_label=sessions.browser_label, **context)


@portal_login_required
def profile_view():
    return _profile(portal_user())


def _renew_session(user):
    """A new session key after a credential change (the old cookie stops being the only proof)."""
    session.clear()
    login_user(User.get_by_id(user.id))


@limiter.limit("10/minute", methods=["POST"])
@portal_login_required
def change_password_view():
    user = portal_user()
    current = request.form.get("current") or ""
    new = request.form.get("password") or ""
    errors = {}
    if not current:
        errors["current"] = _("Enter your current password.")
    elif not profile.current_password_ok(user, current, max_length=MAX_PASSWORD, ip=client_ip()):
        errors["current"] = _("The current password is not correct.")
    errors.update(password_errors(user.portal, new, request.form.get("confirm") or ""))
    if errors:
        return _profile(user, 422, errors=errors, open="password")
    signin.set_password(user, new, actor=user, action="password_changed", ip=client_ip(),
                        keep_session_id=current_session_id())
    _renew_session(user)
    flash(_("Your password was changed. You were signed out everywhere else, and every remembered "
            "browser must do the second step again."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


@limiter.limit("5/minute", methods=["POST"])
@portal_login_required
def change_email_view():
    user = portal_user()
    new = (request.form.get("email") or "").strip()
    error = None
    if not new:
        error = _("Enter the new e-mail address.")
    elif fields.email_problem(new):
        error = _("Enter an e-mail address such as name@example.jp.")
    elif new.lower() == user.email_key:
        error = _("This is already your e-mail address.")
    if error:
        return _profile(user, 422, errors={"email": error}, email_value=new[:255])
    profile.request_email_change(user, new, minutes=current_app.config["EMAIL_CHANGE_TOKEN_MINUTES"],
                                 base_url=base_url(), ip=client_ip())
    flash(_("A confirmation link was sent to %(email)s. Your address changes when you open it.",
            email=new), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


def _link_gone():
    return render("portal/link_problem.html", status=410,
                  message=_("This confirmation link is not valid any more. Request the change "
                            "again from your profile."))


@limiter.limit("20/minute", methods=["POST"])
def confirm_email_view(token):
    result = tokens.check(token, tokens.EMAIL_CHANGE, portal=g.portal)
    if result.problem:
        return _link_gone() if result.problem != "unknown" else render(
            "portal/link_problem.html", status=404,
            message=_("This confirmation link is not valid any more. Request the change "
                      "again from your profile."))
    if request.method != "POST":
        return render("portal/email_confirm.html", new_email=result.token.new_email)
    signed_in = portal_user()
    keep = current_session_id() if signed_in is not None and signed_in.id == result.token.user_id else None
    outcome = profile.confirm_email_change(token, ip=client_ip(), keep_session_id=keep)
    if isinstance(outcome, str):
        return _link_gone()
    _user, new = outcome
    flash(_("Your e-mail address is now %(email)s.", email=new), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


@limiter.limit("5/minute", methods=["POST"])
@portal_login_required
def backup_codes_view():
    user = portal_user()
    codes = ts.new_backup_codes(user, ip=client_ip())
    return render("portal/backup_codes.html", codes=codes, back=url_for(f"{g.portal}.profile"))


@portal_login_required
def revoke_browser_view(browser_id):
    user = portal_user()
    if ts.revoke_browser(user, browser_id, ip=client_ip()):
        flash(_("The browser must do the second step again at its next sign-in."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


# --- Sessions ---------------------------------------------------------------------------------

@portal_login_required
def end_session_view(session_id):
    user = portal_user()
    if sessions.end_own(user, session_id, current_id=current_session_id(), ip=client_ip()):
        flash(_("That session is signed out."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


@portal_login_required
def end_other_sessions_view():
    user = portal_user()
    sessions.end_own_others(user, current_id=current_session_id(), ip=client_ip())
    flash(_("You were signed out everywhere else."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


# --- Changing the two-step method: re-check the current one first (SPEC 11.1) ------------------

def _reauth_fresh() -> bool:
    return time.time() - session.get(REAUTH, 0) < profile.REAUTH_SECONDS


def _recheck_page(user, error=None, notice=None, status=200):
    return render("portal/twostep_change.html", status=status, user=user, fresh=_reauth_fresh(),
                  error=error, notice=notice, masked=ts.mask_email(user.email))


@limiter.limit("10/minute", methods=["POST"])
@portal_login_required
def twostep_change_view():
    """GET: the re-check of the current method (or, once passed, the choice of the new one).
    POST: a code of the current method, or a backup code."""
    user = portal_user()
    if request.method != "POST":
        return _recheck_page(user)
    if signin.twostep_locked(user):
        return _recheck_page(user, _("Too many wrong codes. Try again later."), status=429)
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if not code or len(code) > 40:
        return _recheck_page(user, _("Enter the code of your current two-step verification."), status=422)
    ok = False
    if fields.typed_code(code) is not None:
        if user.twostep_method == TOTP:
            ok = ts.verify_totp(user, code, ip=client_ip())
        elif user.twostep_method == MAIL_OTP:
            ok = ts.verify_mail_otp(user, code, config=current_app.config, ip=client_ip())[0] == ts.CODE_OK
    else:
        ok = ts.use_backup_code(user, code, ip=client_ip())
    if not ok:
        signin.register_twostep_failure(user, ip=client_ip(), reason="profile re-check")
        return _recheck_page(user, _("The code is not correct or was already used."), status=422)
    signin.twostep_succeeded(user)
    session[REAUTH] = time.time()
    return redirect(url_for(f"{g.portal}.twostep_change"), 303)


@limiter.limit("5/minute", methods=["POST"])
@portal_login_required
def twostep_change_send_view():
    """Mail OTP users get a code for the re-check (a POST: opening the page sends nothing)."""
    user = portal_user()
    if user.twostep_method != MAIL_OTP:
        return redirect(url_for(f"{g.portal}.twostep_change"), 303)
    result = ts.send_mail_otp(user, config=current_app.config, force=True, ip=client_ip())
    notice = (_("A one-time password was sent.") if result.outcome == ts.SENT
              else _("A code was sent just now. You can request another one in %(s)d seconds.",
                     s=result.wait_seconds))
    return _recheck_page(user, notice=notice)


def _needs_recheck():
    flash(_("Confirm your current two-step verification first."), "error")
    return redirect(url_for(f"{g.portal}.twostep_change"), 303)


@limiter.limit("10/minute", methods=["POST"])
@portal_login_required
def switch_totp_view():
    user = portal_user()
    if not _reauth_fresh():
        return _needs_recheck()
    if request.method == "POST" and request.form.get("start") == "1":
        session[PROFILE_TOTP] = totp.new_secret()  # held in the server-side session row
    secret = session.get(PROFILE_TOTP)
    if not secret:
        return redirect(url_for(f"{g.portal}.twostep_change"), 303)
    uri = totp.provisioning_uri(secret, user.login_id, ts.portal_issuer(user.portal))

    def page(error=None, status=200):
        return render("portal/totp_setup.html", status=status, qr=totp.qr_svg(uri),
                      secret=totp.grouped(secret), error=error, action=url_for(f"{g.portal}.switch_totp"),
                      profile=True)

    if request.method != "POST" or request.form.get("start") == "1":
        return page()
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if fields.typed_code(code) is None:
        return page(_("Enter the 6-digit code that your authenticator app shows."), 422)
    if not ts.confirm_totp(user, secret, code, ip=client_ip()):
        return page(_("The code is not correct. Check that the app shows this account and that the "
                      "device's clock is right."), 422)
    session.pop(PROFILE_TOTP, None)
    session.pop(REAUTH, None)
    codes = ts.new_backup_codes(user, ip=client_ip())
    return render("portal/backup_codes.html", codes=codes, back=url_for(f"{g.portal}.profile"))


@limiter.limit("10/minute", methods=["POST"])
@portal_login_required
def switch_mail_view():
    user = portal_user()
    if not _reauth_fresh():
        return _needs_recheck()
    action = url_for(f"{g.portal}.switch_mail")

    def page(error=None, notice=None, status=200):
        return render("portal/mail_otp.html", status=status, masked=ts.mask_email(user.email), setup=True,
                      error=error, notice=notice, action=action, resend=None, profile=True)

    if request.method != "POST":
        return page()
    if request.form.get("start") == "1":
        ts.send_mail_otp(user, config=current_app.config, force=True, ip=client_ip())
        return page(notice=_("A one-time password was sent."))
    code = (request.form.get("code") or "").strip()
    if fields.typed_code(code, ts.OTP_DIGITS) is None:
        return page(_("The one-time password is 6 digits (0-9)."), status=422)
    outcome, left = ts.verify_mail_otp(user, code, config=current_app.config, ip=client_ip())
    if outcome != ts.CODE_OK:
        return page(_("The one-time password is not correct. %(n)d tries left.", n=left), status=422)
    ts.choose_mail_otp(user, ip=client_ip())
    session.pop(REAUTH, None)
    flash(_("Two-step verification now uses Mail OTP."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


def register(bp):
    bp.add_url_rule("/dashboard", "dashboard", dashboard_view)
    bp.add_url_rule("/profile", "profile", profile_view)
    bp.add_url_rule("/profile/password", "change_password", change_password_view, methods=["POST"])
    bp.add_url_rule("/profile/email", "change_email", change_email_view, methods=["POST"])
    bp.add_url_rule("/profile/email/<token>", "confirm_email", confirm_email_view, methods=["GET", "POST"])
    bp.add_url_rule("/profile/backup-codes", "backup_codes", backup_codes_view, methods=["POST"])
    bp.add_url_rule("/profile/browsers/<browser_id>/revoke", "revoke_browser", revoke_browser_view,
                    methods=["POST"])
    bp.add_url_rule("/profile/sessions/<session_id>/end", "end_session", end_session_view, methods=["POST"])
    bp.add_url_rule("/profile/sessions/end-others", "end_other_sessions", end_other_sessions_view,
                    methods=["POST"])
    bp.add_url_rule("/profile/twostep", "twostep_change", twostep_change_view, methods=["GET", "POST"])
    bp.add_url_rule("/profile/twostep/send", "twostep_change_send", twostep_change_send_view,
                    methods=["POST"])
    bp.add_url_rule("/profile/twostep/totp", "switch_totp", switch_totp_view, methods=["GET", "POST"])
    bp.add_url_rule("/profile/twostep/mail", "switch_mail", switch_mail_view, methods=["GET", "POST"])
