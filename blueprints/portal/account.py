"""The signed-in user's pages: dashboard and profile (password, e-mail, two-step method, backup
codes, trusted browsers)."""

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_user

from accounts import audit, fields, outbox, passwords, scope, signin, tokens, totp
from accounts import twostep as ts
from accounts.db import database
from accounts.models import Service, User
from blueprints.extensions import limiter
from blueprints.web import base_url, client_ip, render

from .auth import MAX_PASSWORD, password_errors, rules_for
from .guard import portal_login_required, portal_user

SERVICE_STATES = {
    "subscribed": _l("Applied"),
    "in_progress": _l("In progress"),
    "cancelled": _l("Cancelled"),
}


@portal_login_required
def dashboard_view():
    user = portal_user()
    services = list(Service.select().where(Service.contract == user.contract_id).order_by(Service.name))
    from accounts.contracts import help_contacts

    return render("portal/dashboard.html", user=user, services=services, states=SERVICE_STATES,
                  console=scope.role_of(user) is not None, help=help_contacts(user),
                  faq_url=current_app.config["FAQ_URL"] if user.portal == "business"
                  else current_app.config.get("FAQ_URL_SDPF"))


def _profile(user, status=200, **context):
    context.setdefault("errors", {})
    return render("portal/profile.html", status=status, user=user,
                  browsers=ts.trusted_browsers(user), backup_left=ts.backup_codes_left(user),
                  rules=rules_for(user.portal, ""), symbols=passwords.SYMBOLS[user.portal], **context)


@portal_login_required
def profile_view():
    return _profile(portal_user())


def _renew_session(user):
    """A new session after a credential change (the old cookie stops being the only proof)."""
    lang = session.get("_lang")
    session.clear()
    login_user(User.get_by_id(user.id))
    if lang:
        session["_lang"] = lang


@portal_login_required
def change_password_view():
    user = portal_user()
    current = request.form.get("current") or ""
    new = request.form.get("password") or ""
    errors = {}
    if not current:
        errors["current"] = _("Enter your current password.")
    elif len(current) > MAX_PASSWORD or not passwords.hasher().verify(user.password_hash, current)[0]:
        errors["current"] = _("The current password is not correct.")
        audit.record(user, "password_change_refused", target_user=user, ip=client_ip())
    errors.update(password_errors(user.portal, new, request.form.get("confirm") or ""))
    if errors:
        return _profile(user, 422, errors=errors, open="password")
    signin.set_password(user, new, actor=user, action="password_changed", ip=client_ip())
    _renew_session(user)
    flash(_("Your password was changed. Every remembered browser must do the second step again."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


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
    minutes = current_app.config["EMAIL_CHANGE_TOKEN_MINUTES"]
    base = base_url()
    with database.atomic():
        raw = tokens.issue(user, tokens.EMAIL_CHANGE, minutes, new_email=new)
        outbox.render_and_enqueue("email_change_confirm", recipient=new, kind="email_change",
                                  subject=_l("Confirm your new e-mail address"), user=user,
                                  language=user.language, user_obj=user, portal=user.portal,
                                  link=f"{base}/{user.portal}/profile/email/{raw}", minutes=minutes)
        outbox.render_and_enqueue("email_change_notice", recipient=user.email, kind="email_change_notice",
                                  subject=_l("A change of your e-mail address was requested"), user=user,
                                  language=user.language, user_obj=user, portal=user.portal, new=new)
        audit.record(user, "email_change_requested", target_user=user, field="email", old=user.email,
                     new=new, ip=client_ip())
    flash(_("A confirmation link was sent to %(email)s. Your address changes when you open it.",
            email=new), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


def confirm_email_view(token):
    result = tokens.check(token, tokens.EMAIL_CHANGE)
    if result.problem is None and result.token.user.portal != g.portal:
        result = tokens.Check(None, "unknown")
    if result.problem:
        return render("portal/link_problem.html", status=404 if result.problem == "unknown" else 410,
                      message=_("This confirmation link is not valid any more. Request the change "
                                "again from your profile."))
    if request.method == "GET":
        return render("portal/email_confirm.html", new_email=result.token.new_email)
    user = result.token.user
    new = result.token.new_email
    with database.atomic():
        used = tokens.consume(token, tokens.EMAIL_CHANGE)
        if used.problem:
            return render("portal/link_problem.html", status=410,
                          message=_("This confirmation link is not valid any more. Request the change "
                                    "again from your profile."))
        User.update(email=new, email_key=new.lower(), version=User.version + 1).where(
            User.id == user.id).execute()
        tokens.void_all(user, tokens.RESET)
        audit.record(user, "email_changed", target_user=user, field="email", old=user.email, new=new,
                     ip=client_ip())
    flash(_("Your e-mail address is now %(email)s.", email=new), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


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


PROFILE_TOTP = "profile_totp_secret"


@portal_login_required
def switch_totp_view():
    user = portal_user()
    secret = session.get(PROFILE_TOTP)
    if not secret or request.method == "GET" and request.args.get("new"):
        secret = totp.new_secret()
        session[PROFILE_TOTP] = secret
    uri = totp.provisioning_uri(secret, user.login_id, ts.portal_issuer(user.portal))
    action = url_for(f"{g.portal}.switch_totp")

    def page(error=None, status=200):
        return render("portal/totp_setup.html", status=status, qr=totp.qr_svg(uri),
                      secret=totp.grouped(secret), error=error, action=action, profile=True)

    if request.method == "GET":
        return page()
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return page(_("Enter the 6-digit code that your authenticator app shows."), 422)
    if not ts.confirm_totp(user, secret, code, ip=client_ip()):
        return page(_("The code is not correct. Check that the app shows this account and that the "
                      "device's clock is right."), 422)
    session.pop(PROFILE_TOTP, None)
    codes = ts.new_backup_codes(user, ip=client_ip())
    return render("portal/backup_codes.html", codes=codes, back=url_for(f"{g.portal}.profile"))


@portal_login_required
def switch_mail_view():
    user = portal_user()
    action = url_for(f"{g.portal}.switch_mail")

    def page(error=None, notice=None, status=200):
        return render("portal/mail_otp.html", status=status, masked=ts.mask_email(user.email), setup=True,
                      error=error, notice=notice, action=action, resend=None, profile=True)

    if request.method == "GET":
        ts.send_mail_otp(user, config=current_app.config, force=False, ip=client_ip())
        return page()
    code = (request.form.get("code") or "").strip()
    if len(code) != ts.OTP_DIGITS or not code.isdigit():
        return page(_("The one-time password is 6 digits (0-9)."), status=422)
    outcome, left = ts.verify_mail_otp(user, code, config=current_app.config, ip=client_ip())
    if outcome != ts.CODE_OK:
        return page(_("The one-time password is not correct. %(n)d tries left.", n=left), status=422)
    ts.choose_mail_otp(user, ip=client_ip())
    flash(_("Two-step verification now uses Mail OTP."), "ok")
    return redirect(url_for(f"{g.portal}.profile"), 303)


change_password_view = limiter.limit("10/minute", methods=["POST"])(change_password_view)
change_email_view = limiter.limit("5/minute", methods=["POST"])(change_email_view)
switch_totp_view = limiter.limit("10/minute", methods=["POST"])(switch_totp_view)
switch_mail_view = limiter.limit("10/minute", methods=["POST"])(switch_mail_view)
confirm_email_view = limiter.limit("20/minute", methods=["POST"])(confirm_email_view)


def register(bp):
    bp.add_url_rule("/dashboard", "dashboard", dashboard_view)
    bp.add_url_rule("/profile", "profile", profile_view)
    bp.add_url_rule("/profile/password", "change_password", change_password_view, methods=["POST"])
    bp.add_url_rule("/profile/email", "change_email", change_email_view, methods=["POST"])
    bp.add_url_rule("/profile/email/<token>", "confirm_email", confirm_email_view, methods=["GET", "POST"])
    bp.add_url_rule("/profile/backup-codes", "backup_codes", backup_codes_view, methods=["POST"])
    bp.add_url_rule("/profile/browsers/<browser_id>/revoke", "revoke_browser", revoke_browser_view,
                    methods=["POST"])
    bp.add_url_rule("/profile/twostep/totp", "switch_totp", switch_totp_view, methods=["GET", "POST"])
    bp.add_url_rule("/profile/twostep/mail", "switch_mail", switch_mail_view, methods=["GET", "POST"])
