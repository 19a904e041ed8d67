"""Entry, sign-in, sign-out, the reset request (identity check), the new password, "ask my admin".

Every view changes state only on POST and tests ``request.method == "POST"`` explicitly (a HEAD
is answered like a GET). The reset request and "ask my admin" only record what was typed; the
worker answers them (accounts.identity_requests, SPEC 11.8).
"""
from flask import current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import logout_user

from accounts import fields, identity, identity_requests, passwords, period, recovery, signin, tokens, twostep
from accounts.db import database, pipelined
from accounts.models import BUSINESS
from accounts.terms import ask_pending_ahead
from blueprints.extensions import failed, limiter
from blueprints.web import client_ip, render, render_public, safe_next

from . import flow
from .guard import portal_user

MAX_LOGIN_ID = fields.MAX_LOGIN_ID
MAX_PASSWORD = 256  # longer input is refused before hashing (the policy allows 32)
MAX_MESSAGE = 2000

RULE_LABELS = {
    "length": _l("8 to 32 characters"),
    "digit": _l("At least one digit (0-9)"),
    "upper": _l("At least one upper-case letter (A-Z)"),
    "lower": _l("At least one lower-case letter (a-z)"),
    "charset": _l("Only letters, digits and the symbols below"),
}
FIELD_LABELS = {
    "login_id": _l("Login ID"),
    "email": _l("E-mail address"),
    "name": _l("Name"),
    "phone": _l("Phone number"),
}
GENERIC_REFUSAL = _l("The login ID or the password is not correct, or the account is temporarily "
                     "locked. Check what you typed, or wait a while and try again.")


def _account_key() -> str:
    """Rate-limit key per account: the submitted login ID, lower-cased, per portal."""
    return f"acct:{g.portal}:{(request.form.get('login_id') or '').strip().lower()[:MAX_LOGIN_ID]}"


def rules_for(portal: str, password: str) -> list[dict]:
    return [{"key": r.key, "ok": r.ok, "label": RULE_LABELS[r.key]}
            for r in passwords.check_policy(portal, password)]


def password_errors(portal: str, password: str, confirm: str | None) -> dict:
    """Field errors for a new password: the same validator as the live rules list."""
    errors = {}
    if not password:
        errors["password"] = _("Enter a new password.")
    elif len(password) > MAX_PASSWORD or passwords.policy_failures(portal, password):
        bad = passwords.invalid_characters(portal, password[:MAX_PASSWORD])
        if bad:
            shown = " ".join("(space)" if c == " " else ("(full-width space)" if c == "\u3000" else c)
                             for c in bad[:10])
            errors["password"] = _("These characters cannot be used: %(chars)s", chars=shown)
        else:
            failed = [str(RULE_LABELS[k]) for k in passwords.policy_failures(portal, password)]
            if len(password) > MAX_PASSWORD:
                failed = [str(RULE_LABELS["length"])]
            errors["password"] = _("The password does not meet: %(rules)s", rules=" / ".join(failed))
    if confirm is not None and not errors and passwords.normalise(confirm) != passwords.normalise(password):
        errors["confirm"] = _("The two passwords differ. Type the same password twice.")
    return errors


@limiter.limit("10/minute", methods=["POST"])
@limiter.limit("10/minute", key_func=_account_key, methods=["POST"], deduct_when=failed)
def signin_view():
    portal = g.portal
    if request.method != "POST":
        if portal_user() is not None:
            return redirect(safe_next(request.args.get("next"), url_for(f"{portal}.dashboard")), 303)
        return render_public("portal/signin.html", next=request.args.get("next", ""), errors={}, login_id="")
    login_id = (request.form.get("login_id") or "").strip()
    password = request.form.get("password") or ""
    next_url = safe_next(request.form.get("next"), "")
    errors = {}
    if not login_id:
        errors["login_id"] = _("Enter your login ID.")
    elif len(login_id) > MAX_LOGIN_ID:
        errors["login_id"] = _("The login ID is too long (at most %(n)d characters).", n=MAX_LOGIN_ID)
    if not password:
        errors["password"] = _("Enter your password.")
    elif len(password) > MAX_PASSWORD:
        errors["password"] = _("The password is too long.")
    if errors:
        return render("portal/signin.html", status=422, next=next_url, errors=errors,
                      login_id=login_id[:MAX_LOGIN_ID])
    trusted_token = request.cookies.get(flow.trust_cookie_name())
    result = signin.verify_password(portal, login_id, password,
                                    threshold=current_app.config["LOCKOUT_THRESHOLD"], ip=client_ip(),
                                    trusted_token=trusted_token)
    if result.outcome != signin.OK:
        return render("portal/signin.html", status=401, next=next_url, login_id=login_id,
                      errors={"form": GENERIC_REFUSAL})
    user = result.user
    # One transaction for the rest of the sign-in (trusted browser, completion, audit): one commit,
    # pipelined on PostgreSQL (BEGIN and the terms question go with the trusted browser's UPDATE,
    # the last writes with COMMIT).
    with pipelined(), database.atomic():
        may_skip = flow.has_method(user) and user.first_login_done and bool(trusted_token)
        if may_skip:
            ask_pending_ahead(user)   # read next when the browser is trusted: asked with its check
        trusted = may_skip and twostep.is_trusted(user, trusted_token, ip=client_ip(), record=False)
        flow.start(user, next_url, second_done=trusted)
        return flow.after_password(user, trusted)


def signout_view():
    user = portal_user()
    if user is not None:
        signin.signed_out(user, ip=client_ip())
    logout_user()
    session.clear()
    flash(_("You are signed out."), "ok")
    return redirect(url_for(f"{g.portal}.landing"), 303)


# --- Reset request (identity check) ----------------------------------------------------------------

def _reset_form(errors=None, values=None, status=200):
    return render("portal/reset_request.html", status=status, fields=identity.fields_for(g.portal),
                  labels=FIELD_LABELS, errors=errors or {}, values=values or {},
                  faq_url=faq_url_for(g.portal))


@limiter.limit("5/minute", methods=["POST"])
def reset_request_view():
    """The identity check: one insert, the same answer whether or not anything matched."""
    portal = g.portal
    if request.method != "POST":
        return _reset_form()
    values = {f: (request.form.get(f) or "") for f in identity.fields_for(portal)}
    values = {f: (v.strip() if f != "name" else v.strip("\r\n")) for f, v in values.items()}
    errors = {}
    for f, v in values.items():
        if not v.strip():
            errors[f] = _("Enter your %(field)s.", field=FIELD_LABELS[f])
        elif len(v) > identity.MAX_FIELD_LENGTH:
            errors[f] = _("Too long (at most %(n)d characters).", n=identity.MAX_FIELD_LENGTH)
    if "email" not in errors and "@" not in values["email"]:
        errors["email"] = _("Enter an e-mail address such as name@example.jp.")
    if errors:
        return _reset_form(errors, values, status=422)
    identity_requests.record_reset(portal, values, ip=client_ip())
    current = period.current()
    before = period.phase(period=current) == period.BEFORE
    return render("portal/reset_sent.html", opens_at=current.start_at if before else None)


# --- New password from the mail link -----------------------------------------------------------------

def _token_problem(problem):
    messages = {
        "expired": _("This link has expired. Request a new password reset mail."),
        "used": _("This link has already been used. Request a new password reset mail if you "
                  "need to set the password again."),
        "voided": _("A newer password reset mail was sent: use the link in the newest mail."),
        "unknown": _("This link is not valid. Copy the whole link from the mail, or request a new one."),
    }
    return render("portal/link_problem.html", status=404 if problem == "unknown" else 410,
                  message=messages[problem])


@limiter.limit("20/minute", methods=["POST"])
def reset_password_view(token):
    portal = g.portal
    result = tokens.check(token, tokens.RESET, portal=portal)
    if result.problem:
        return _token_problem(result.problem)
    user = result.token.user
    if request.method != "POST":
        return render("portal/reset_password.html", user=user, errors={}, rules=rules_for(portal, ""),
                      symbols=passwords.SYMBOLS[portal])
    password = request.form.get("password") or ""
    errors = password_errors(portal, password, request.form.get("confirm") or "")
    if errors:
        return render("portal/reset_password.html", status=422, user=user, errors=errors,
                      rules=rules_for(portal, password[:MAX_PASSWORD]), symbols=passwords.SYMBOLS[portal])
    problem = recovery.set_password_from_link(token, password, ip=client_ip())
    if problem:
        return _token_problem(problem)
    session.clear()
    return render("portal/password_set.html")


def password_rules_view():
    """htmx: the rules list for what is typed so far (the same validator as the final POST)."""
    password = (request.form.get("password") or "")[:MAX_PASSWORD]
    return render("portal/_password_rules.html", "portal/_password_rules.html",
                  rules=rules_for(g.portal, password))


# --- Ask my administrator ------------------------------------------------------------------------------

@limiter.limit("5/minute", methods=["POST"])
@limiter.limit("5/minute", key_func=_account_key, methods=["POST"])
def ask_admin_view():
    """"Ask my administrator": recorded here; the admins' mails are written by the worker."""
    portal = g.portal
    if request.method != "POST":
        return render("portal/ask_admin.html", errors={}, values={})
    login_id = (request.form.get("login_id") or "").strip()
    message = (request.form.get("message") or "").strip()
    errors = {}
    if not login_id:
        errors["login_id"] = _("Enter your login ID.")
    elif len(login_id) > MAX_LOGIN_ID:
        errors["login_id"] = _("The login ID is too long (at most %(n)d characters).", n=MAX_LOGIN_ID)
    if len(message) > MAX_MESSAGE:
        errors["message"] = _("The message is too long (at most %(n)d characters).", n=MAX_MESSAGE)
    if errors:
        return render("portal/ask_admin.html", status=422, errors=errors,
                      values={"login_id": login_id[:MAX_LOGIN_ID], "message": message[:MAX_MESSAGE]})
    identity_requests.record_ask_admin(portal, login_id, message, ip=client_ip())
    return render("portal/ask_admin_sent.html", faq_url=faq_url_for(g.portal))


def register(bp):
    bp.add_url_rule("/signin", "signin", signin_view, methods=["GET", "POST"])
    bp.add_url_rule("/signout", "signout", signout_view, methods=["POST"])
    bp.add_url_rule("/password/reset", "reset_request", reset_request_view, methods=["GET", "POST"])
    bp.add_url_rule("/password/reset/<token>", "reset_password", reset_password_view,
                    methods=["GET", "POST"])
    bp.add_url_rule("/password/rules", "password_rules", password_rules_view, methods=["POST"])
    bp.add_url_rule("/password/ask-admin", "ask_admin", ask_admin_view, methods=["GET", "POST"])


def faq_url_for(portal: str) -> str | None:
    """Business Portal users without an administrator go to the FAQ; SDPF users ask their
    contract's administrator and their partner, and see a FAQ only when FAQ_URL_SDPF is set."""
    return current_app.config["FAQ_URL"] if portal == BUSINESS else current_app.config.get("FAQ_URL_SDPF")
