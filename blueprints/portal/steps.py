"""The steps between the password and the dashboard: method choice, Mail OTP, TOTP (set-up and
verification), backup codes, terms (SPEC 5.4). Every view works on the pending sign-in only."""
from flask import current_app, g, redirect, request, session, url_for
from flask_babel import gettext as _

from accounts import audit, outbox, signin, terms, totp
from accounts import twostep as ts
from accounts.models import MAIL_OTP, TOTP
from blueprints.extensions import limiter
from blueprints.web import client_ip, render

from . import flow


def _code_key() -> str:
    data = session.get(flow.PENDING) or {}
    return f"code:{data.get('uid', 'none')}"


def _count_failure(user, reason: str) -> None:
    """A wrong second-step code counts toward the account lockout like a wrong password, so that
    someone holding the password cannot guess codes for long; a lock ends the pending sign-in."""
    signin.register_failure(user, threshold=current_app.config["LOCKOUT_THRESHOLD"], ip=client_ip(),
                            reason=reason)


def _remember() -> bool:
    return request.form.get("remember") == "1"


def choose_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if request.method == "GET":
        return render("portal/twostep_choose.html", error=None)
    method = request.form.get("method")
    if method in (MAIL_OTP, TOTP):
        audit.record(user, "twostep_method_chosen", target_user=user, new=method, ip=client_ip())
    if method == MAIL_OTP:
        flow.update(setup=MAIL_OTP)
        return redirect(url_for(f"{g.portal}.mail_otp_setup"), 303)
    if method == TOTP:
        flow.update(setup=TOTP)
        return redirect(url_for(f"{g.portal}.totp_setup"), 303)
    return render("portal/twostep_choose.html", status=422,
                  error=_("Choose Mail OTP or TOTP: two-step verification is required."))


def _mail_page(user, *, setup: bool, error=None, notice=None, status=200):
    return render("portal/mail_otp.html", status=status, masked=ts.mask_email(user.email), setup=setup,
                  error=error, notice=notice, mail_delayed=outbox.delivery_delayed(),
                  action=url_for(f"{g.portal}.mail_otp_setup" if setup else f"{g.portal}.mail_otp"),
                  resend=url_for(f"{g.portal}.mail_otp_resend"))


def _send_notice(result):
    if result.outcome == ts.BLOCKED:
        return _("All tries of the last code are used up. You can request a new code in %(s)d seconds.",
                 s=result.wait_seconds)
    if result.outcome == ts.TOO_SOON and result.wait_seconds > 0:
        return _("A code was sent just now. You can request another one in %(s)d seconds.",
                 s=result.wait_seconds)
    return None


def _mail_otp(setup: bool):
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if setup and (flow.pending() or {}).get("setup") != MAIL_OTP:
        return flow.advance(user)
    if not setup and user.twostep_method != MAIL_OTP:
        return flow.advance(user)
    if request.method == "GET":
        result = ts.send_mail_otp(user, config=current_app.config, force=False, ip=client_ip())
        return _mail_page(user, setup=setup, notice=_send_notice(result) if result.outcome == ts.BLOCKED
                          else None)
    code = (request.form.get("code") or "").strip()
    if not code:
        return _mail_page(user, setup=setup, error=_("Enter the one-time password from the mail."),
                          status=422)
    if len(code) != ts.OTP_DIGITS or not code.isdigit():
        return _mail_page(user, setup=setup, status=422,
                          error=_("The one-time password is 6 digits (0-9)."))
    outcome, left = ts.verify_mail_otp(user, code, config=current_app.config, ip=client_ip())
    if outcome == ts.CODE_OK:
        if setup:
            ts.choose_mail_otp(user, ip=client_ip())
        return flow.second_step_done(user, _remember())
    if outcome == ts.CODE_WRONG:
        error = _("The one-time password is not correct. %(n)d tries left.", n=left)
    elif outcome == ts.CODE_EXHAUSTED:
        _count_failure(user, "mail OTP tries used up")
        error = _("The one-time password is not correct, and all tries of this code are used up. "
                  "Request a new code when the current one has expired.")
    elif outcome == ts.CODE_BLOCKED:
        error = _("All tries of this code are used up. Request a new code when the current one has "
                  "expired.")
    else:
        error = _("The one-time password has expired. Request a new code.")
    return _mail_page(user, setup=setup, error=error, status=422)


def mail_otp_view():
    return _mail_otp(setup=False)


def mail_otp_setup_view():
    return _mail_otp(setup=True)


def mail_otp_resend_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    setup = (flow.pending() or {}).get("setup") == MAIL_OTP and user.twostep_method != MAIL_OTP
    if not setup and user.twostep_method != MAIL_OTP:
        return flow.advance(user)
    result = ts.send_mail_otp(user, config=current_app.config, force=True, ip=client_ip())
    notice = _send_notice(result) or _("A new one-time password was sent.")
    return _mail_page(user, setup=setup, notice=notice, status=200 if result.outcome == ts.SENT else 429)


def _totp_setup_page(user, secret, *, action, error=None, status=200):
    uri = totp.provisioning_uri(secret, user.login_id, ts.portal_issuer(user.portal))
    return render("portal/totp_setup.html", status=status, qr=totp.qr_svg(uri),
                  secret=totp.grouped(secret), error=error, action=action)


def totp_setup_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if (flow.pending() or {}).get("setup") != TOTP:
        return flow.advance(user)
    secret = (flow.pending() or {}).get("totp_secret")
    if not secret:
        secret = totp.new_secret()
        flow.update(totp_secret=secret)
    action = url_for(f"{g.portal}.totp_setup")
    if request.method == "GET":
        return _totp_setup_page(user, secret, action=action)
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return _totp_setup_page(user, secret, action=action, status=422,
                                error=_("Enter the 6-digit code that your authenticator app shows."))
    if not ts.confirm_totp(user, secret, code, ip=client_ip()):
        return _totp_setup_page(user, secret, action=action, status=422,
                                error=_("The code is not correct. Check that the app shows this "
                                        "account and that the device's clock is right."))
    flow.update(second=True, setup=None, totp_secret=None)
    codes = ts.new_backup_codes(user, ip=client_ip())
    return render("portal/backup_codes.html", codes=codes, back=url_for(f"{g.portal}.signin_continue"))


def continue_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    return flow.advance(user)


def _totp_page(user, error=None, status=200):
    return render("portal/totp.html", status=status, error=error)


def totp_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if user.twostep_method != TOTP:
        return flow.advance(user)
    if request.method == "GET":
        return _totp_page(user)
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return _totp_page(user, _("Enter the 6-digit code that your authenticator app shows."), 422)
    if not ts.verify_totp(user, code, ip=client_ip()):
        _count_failure(user, "wrong TOTP code")
        return _totp_page(user, _("The code is not correct or was already used. Wait for the next "
                                  "code in your app and try again."), 422)
    return flow.second_step_done(user, _remember())


def backup_code_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if user.twostep_method is None:
        return flow.advance(user)
    if request.method == "GET":
        return render("portal/backup_code.html", error=None)
    code = (request.form.get("code") or "").strip()
    if not code or len(code) > 40:
        return render("portal/backup_code.html", status=422,
                      error=_("Enter one of your backup codes, such as abcde-fghjk."))
    if not ts.use_backup_code(user, code, ip=client_ip()):
        _count_failure(user, "wrong backup code")
        return render("portal/backup_code.html", status=422,
                      error=_("This backup code is not correct or was already used."))
    return flow.second_step_done(user, _remember())


def terms_view():
    user = flow.pending_user()
    if user is None:
        return flow.lost()
    if not (flow.pending() or {}).get("second"):
        return flow.advance(user)
    current = terms.pending_for(user)
    if current is None:
        return flow.advance(user)
    if request.method == "POST":
        try:
            version = int(request.form.get("version") or 0)
        except ValueError:
            version = 0
        if version == current.version:
            terms.accept(user, current, ip=client_ip())
            return flow.advance(user)
    return render("portal/terms.html", terms=current,
                  status=200 if request.method == "GET" else 409)


_code_limits = [limiter.limit("10/minute", methods=["POST"]),
                limiter.limit("10/minute", key_func=_code_key, methods=["POST"])]


def _limited(view):
    for decorate in _code_limits:
        view = decorate(view)
    return view


mail_otp_view = _limited(mail_otp_view)
mail_otp_setup_view = _limited(mail_otp_setup_view)
totp_setup_view = _limited(totp_setup_view)
totp_view = _limited(totp_view)
backup_code_view = _limited(backup_code_view)
mail_otp_resend_view = limiter.limit("5/minute", methods=["POST"])(mail_otp_resend_view)


def register(bp):
    bp.add_url_rule("/signin/method", "twostep_choose", choose_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp", "mail_otp", mail_otp_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp/setup", "mail_otp_setup", mail_otp_setup_view,
                    methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp/resend", "mail_otp_resend", mail_otp_resend_view, methods=["POST"])
    bp.add_url_rule("/signin/totp/setup", "totp_setup", totp_setup_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/totp", "totp", totp_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/backup-code", "backup_code", backup_code_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/continue", "signin_continue", continue_view, methods=["GET"])
    bp.add_url_rule("/signin/terms", "terms", terms_view, methods=["GET", "POST"])
