"""The steps between the password and the dashboard: method choice, Mail OTP, TOTP (set-up and
verification), backup codes, terms (SPEC 5.4). Every view works on the pending sign-in only
(``flow.pending_step``), changes state only on POST, and a user who already has a method can only
pass that method or a backup code (SPEC 11.1)."""
from flask import current_app, g, redirect, request, session, url_for
from flask_babel import gettext as _

from accounts import clock, fields, outbox, signin, terms, totp
from accounts import twostep as ts
from accounts.models import MAIL_OTP, TOTP
from blueprints.extensions import failed, limiter
from blueprints.web import client_ip, render

from . import flow


def _code_key() -> str:
    data = session.get(flow.PENDING) or {}
    return f"code:{data.get('uid', 'none')}"


def code_limits(view):
    """Per address and per pending account: 10 wrong codes a minute."""
    view = limiter.limit("10/minute", key_func=_code_key, methods=["POST"], deduct_when=failed)(view)
    return limiter.limit("10/minute", methods=["POST"], deduct_when=failed)(view)


def _count_failure(user, reason: str) -> None:
    """A wrong second-step code counts toward the second step's own lock (accounts.lockout)."""
    signin.register_twostep_failure(user, ip=client_ip(), reason=reason)


def _lock_message(user):
    """The message for a locked second step, or None when codes may be tried."""
    if not signin.twostep_locked(user):
        return None
    from accounts import lockout

    until = lockout.locked_until(user)
    if until is None:
        return _("Two-step verification is locked after too many wrong codes. Reset your password "
                 "by mail or ask your administrator to unlock your account.")
    return _("Too many wrong codes. Try again after %(time)s (JST).", time=clock.format_jst(until))


def _remember() -> bool:
    return request.form.get("remember") == "1"


def _to_own_step(user):
    """A user with a confirmed method is sent to that method's page (never to a set-up page)."""
    return redirect(url_for(f"{g.portal}.{flow.own_step(user)}"), 303)


@flow.pending_step
def choose_view(user):
    if flow.has_method(user):
        return _to_own_step(user)
    if request.method != "POST":
        return render("portal/twostep_choose.html", error=None)
    method = request.form.get("method")
    if method in (MAIL_OTP, TOTP):
        ts.method_chosen(user, method, ip=client_ip())
    if method == MAIL_OTP:
        flow.update(setup=MAIL_OTP, totp_secret=None)
        ts.send_mail_otp(user, config=current_app.config, force=False, ip=client_ip())
        return redirect(url_for(f"{g.portal}.mail_otp_setup"), 303)
    if method == TOTP:
        flow.update(setup=TOTP, totp_secret=totp.new_secret())
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


def _setting_up(user, method: str) -> bool:
    return not flow.has_method(user) and (flow.pending() or {}).get("setup") == method


def _mail_otp(user, setup: bool):
    if setup and not _setting_up(user, MAIL_OTP):
        return flow.advance(user) if not flow.has_method(user) else _to_own_step(user)
    if not setup and user.twostep_method != MAIL_OTP:
        return flow.advance(user)
    if request.method != "POST":
        return _mail_page(user, setup=setup)
    locked = _lock_message(user)
    if locked:
        return _mail_page(user, setup=setup, error=locked, status=429)
    code = (request.form.get("code") or "").strip()
    if not code:
        return _mail_page(user, setup=setup, error=_("Enter the one-time password from the mail."),
                          status=422)
    if fields.typed_code(code, ts.OTP_DIGITS) is None:
        return _mail_page(user, setup=setup, status=422,
                          error=_("The one-time password is 6 digits (0-9)."))
    outcome, left = ts.verify_mail_otp(user, code, config=current_app.config, ip=client_ip())
    if outcome == ts.CODE_OK:
        if setup:
            ts.choose_mail_otp(user, ip=client_ip())
        return flow.second_step_done(user, _remember())
    if outcome in (ts.CODE_WRONG, ts.CODE_EXHAUSTED):
        _count_failure(user, "wrong mail OTP")
    if outcome == ts.CODE_WRONG:
        error = _("The one-time password is not correct. %(n)d tries left.", n=left)
    elif outcome == ts.CODE_EXHAUSTED:
        error = _("The one-time password is not correct, and all tries of this code are used up. "
                  "Request a new code when the current one has expired.")
    elif outcome == ts.CODE_BLOCKED:
        error = _("All tries of this code are used up. Request a new code when the current one has "
                  "expired.")
    else:
        error = _("The one-time password has expired. Request a new code.")
    return _mail_page(user, setup=setup, error=_lock_message(user) or error, status=422)


@code_limits
@flow.pending_step
def mail_otp_view(user):
    return _mail_otp(user, setup=False)


@code_limits
@flow.pending_step
def mail_otp_setup_view(user):
    return _mail_otp(user, setup=True)


@limiter.limit("5/minute", methods=["POST"])
@flow.pending_step
def mail_otp_resend_view(user):
    setup = _setting_up(user, MAIL_OTP)
    if not setup and user.twostep_method != MAIL_OTP:
        return flow.advance(user)
    result = ts.send_mail_otp(user, config=current_app.config, force=True, ip=client_ip())
    notice = _send_notice(result) or _("A new one-time password was sent.")
    return _mail_page(user, setup=setup, notice=notice, status=200 if result.outcome == ts.SENT else 429)


def _totp_setup_page(user, secret, *, action, error=None, status=200):
    uri = totp.provisioning_uri(secret, user.login_id, ts.portal_issuer(user.portal))
    return render("portal/totp_setup.html", status=status, qr=totp.qr_svg(uri),
                  secret=totp.grouped(secret), error=error, action=action)


@code_limits
@flow.pending_step
def totp_setup_view(user):
    if flow.has_method(user):
        return _to_own_step(user)
    secret = (flow.pending() or {}).get("totp_secret")
    if not _setting_up(user, TOTP) or not secret:
        return flow.advance(user)
    action = url_for(f"{g.portal}.totp_setup")
    if request.method != "POST":
        return _totp_setup_page(user, secret, action=action)
    locked = _lock_message(user)
    if locked:
        return _totp_setup_page(user, secret, action=action, error=locked, status=429)
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if fields.typed_code(code) is None:
        return _totp_setup_page(user, secret, action=action, status=422,
                                error=_("Enter the 6-digit code that your authenticator app shows."))
    if not ts.confirm_totp(user, secret, code, ip=client_ip()):
        _count_failure(user, "wrong TOTP set-up code")
        return _totp_setup_page(user, secret, action=action, status=422,
                                error=_lock_message(user) or _(
                                    "The code is not correct. Check that the app shows this account "
                                    "and that the device's clock is right."))
    flow.mark_second_done(user)
    codes = ts.new_backup_codes(user, ip=client_ip())
    return render("portal/backup_codes.html", codes=codes,
                  continue_action=url_for(f"{g.portal}.signin_continue"))


@flow.pending_step
def continue_view(user):
    """After the backup codes (or a GET that found every step done): the button posts here."""
    if request.method == "POST":
        return flow.advance(user)
    if flow.next_step(user) is not None:
        return flow.advance(user)
    return flow.render_continue()


def _totp_page(error=None, status=200):
    return render("portal/totp.html", status=status, error=error)


@code_limits
@flow.pending_step
def totp_view(user):
    if user.twostep_method != TOTP:
        return flow.advance(user)
    if request.method != "POST":
        return _totp_page()
    locked = _lock_message(user)
    if locked:
        return _totp_page(locked, 429)
    code = (request.form.get("code") or "").strip().replace(" ", "")
    if fields.typed_code(code) is None:
        return _totp_page(_("Enter the 6-digit code that your authenticator app shows."), 422)
    if not ts.verify_totp(user, code, ip=client_ip()):
        _count_failure(user, "wrong TOTP code")
        return _totp_page(_lock_message(user) or _(
            "The code is not correct or was already used. Wait for the next code in your app and "
            "try again."), 422)
    return flow.second_step_done(user, _remember())


@code_limits
@flow.pending_step
def backup_code_view(user):
    if not flow.has_method(user):
        return flow.advance(user)
    if request.method != "POST":
        return render("portal/backup_code.html", error=None)
    locked = _lock_message(user)
    if locked:
        return render("portal/backup_code.html", status=429, error=locked)
    code = (request.form.get("code") or "").strip()
    if not code or len(code) > 40:
        return render("portal/backup_code.html", status=422,
                      error=_("Enter one of your backup codes, such as abcde-fghjk."))
    if not ts.use_backup_code(user, code, ip=client_ip()):
        _count_failure(user, "wrong backup code")
        return render("portal/backup_code.html", status=422, error=_lock_message(user) or _(
            "This backup code is not correct or was already used."))
    return flow.second_step_done(user, _remember())


@flow.pending_step
def terms_view(user):
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
        return render("portal/terms.html", terms=current, body=terms.render(current.body), status=409)
    return render("portal/terms.html", terms=current, body=terms.render(current.body))


def register(bp):
    bp.add_url_rule("/signin/method", "twostep_choose", choose_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp", "mail_otp", mail_otp_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp/setup", "mail_otp_setup", mail_otp_setup_view,
                    methods=["GET", "POST"])
    bp.add_url_rule("/signin/mail-otp/resend", "mail_otp_resend", mail_otp_resend_view, methods=["POST"])
    bp.add_url_rule("/signin/totp/setup", "totp_setup", totp_setup_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/totp", "totp", totp_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/backup-code", "backup_code", backup_code_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/continue", "signin_continue", continue_view, methods=["GET", "POST"])
    bp.add_url_rule("/signin/terms", "terms", terms_view, methods=["GET", "POST"])
