"""The legacy Login Portal before, during and after the migration period (SPEC 6).

Before and during the period it signs users in with their legacy login ID and password; during
the period a pop-up then shows the identity information the new portal will use. After the
period ``/legacy/`` is the end-of-service page and every other legacy address redirects to it.

The legacy sign-in is kept in ``session["legacy_account_id"]``, never in Flask-Login: it is not
an identity of the new portals.
"""
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import lazy_gettext as _l

from accounts import fields, legacy, tickets
from accounts.models import LegacyAccount
from blueprints.extensions import limiter
from blueprints.web import FIELD_RULE_ERRORS, client_ip, is_htmx, migration_phase, phase_context, render
from blueprints.web import base_url as web_base_url

bp = Blueprint("legacy", __name__, url_prefix="/legacy")

# Endpoints that stay reachable after the period (the end-of-service page itself).
OPEN_AFTER = {"legacy.index"}

EMAIL_ERRORS = {
    "required": _l("Enter your e-mail address."),
    "too_long": _l("The e-mail address is too long."),
    "invalid": _l("Enter an e-mail address such as name@example.jp."),
}
LOGIN_ID_ERRORS = {
    "required": _l("Enter the login ID."),
    "too_long": _l("The login ID is too long."),
    "invalid": FIELD_RULE_ERRORS["login_id_format"],
    "taken": _l("This login ID is already used in the new portal. Choose another one."),
}
# Name and phone (Business Portal users): the console's validation and its messages' meaning.
NAME_ERRORS = {
    "required": _l("Enter your name."),
    "name_format": FIELD_RULE_ERRORS["name_format"],
    "name_edge_space": FIELD_RULE_ERRORS["name_edge_space"],
}
PHONE_ERRORS = {
    "required": _l("Enter your phone number."),
    "phone_format": FIELD_RULE_ERRORS["phone_format"],
}
TICKET_ERRORS = {
    "subject": {"required": _l("Enter a subject."),
                "too_long": _l("The subject is too long (200 characters at most).")},
    "body": {"required": _l("Describe your request."),
             "too_long": _l("The text is too long (5,000 characters at most).")},
}


@bp.app_context_processor
def _migration_phase():
    return phase_context()


def _phase() -> str:
    return migration_phase()


def _signed_in() -> LegacyAccount | None:
    account_id = session.get("legacy_account_id")
    if not account_id:
        return None
    return LegacyAccount.get_or_none(LegacyAccount.id == account_id)


@bp.before_request
def _closed_after_the_period():
    """After the period the legacy portal is closed: every address leads to the end-of-service page."""
    if not legacy.signin_open(_phase()):
        if request.method == "POST":  # a GET writes nothing, not even the session's row
            session.pop("legacy_account_id", None)
            session.pop("legacy_candidates", None)
        if request.endpoint not in OPEN_AFTER:
            return redirect(url_for("legacy.index"), 303)
    return None


@bp.get("/")
def index():
    phase = _phase()
    if not legacy.signin_open(phase):
        return render_template("legacy/ended.html")
    account = _signed_in()
    if account is None:
        return render_template("legacy/signin.html", login_id="", error=None)
    ident = legacy.identity(account)
    return render_template("legacy/home.html", account=account, ident=ident, phase=phase,
                           show_popup=legacy.popup_open(phase) and ident.user is not None
                           and account.confirmed_at is None and not ident.user.first_login_done,
                           **_identity_form_context(ident))


def _signin_key() -> str:
    return "legacy-signin:" + (request.form.get("login_id") or "").strip().lower()[:100]


@bp.post("/signin")
@limiter.limit("30/minute")
@limiter.limit("10/15 minutes", key_func=_signin_key, deduct_when=lambda r: r.status_code == 200)
def signin():
    """Every matching contract's hash is tried; several matches -> the user picks the contract."""
    login_id = (request.form.get("login_id") or "").strip()
    password = request.form.get("password") or ""
    result = legacy.authenticate(login_id, password, ip=client_ip(),
                                 threshold=current_app.config["LOCKOUT_THRESHOLD"])
    if not result.ok:
        return render_template("legacy/signin.html", login_id=login_id,
                               error=_l("The login ID or password is incorrect.")), 200
    session.clear()  # renew the session at sign-in (the language stays in its own cookie)
    g.pop("csrf_token", None)  # the cached signed CSRF token belonged to the old session
    if len(result.accounts) == 1:
        session["legacy_account_id"] = result.accounts[0].id
        return redirect(url_for("legacy.index"), 303)
    session["legacy_candidates"] = [a.id for a in result.accounts]
    return redirect(url_for("legacy.choose"), 303)


@bp.route("/choose", methods=["GET", "POST"])
def choose():
    ids = session.get("legacy_candidates") or []
    accounts = list(LegacyAccount.select().where(LegacyAccount.id.in_(ids))
                    .order_by(LegacyAccount.contract_ecid)) if ids else []
    if not accounts:
        return redirect(url_for("legacy.index"), 303)
    error = None
    if request.method == "POST":
        picked = fields.whole_number(request.form.get("account"))
        if picked in ids:
            session.pop("legacy_candidates", None)
            session["legacy_account_id"] = picked
            return redirect(url_for("legacy.index"), 303)
        error = _l("Choose one of the contracts.")
    return render_template("legacy/choose.html", accounts=accounts, error=error), (400 if error else 200)


def _identity_form_context(ident, email=None, login_id=None, errors=None, edit=False, name=None,
                           phone=None):
    errors = errors or {}
    return {
        "form_email": ident.email if email is None else email,
        "form_login_id": ident.login_id if login_id is None else login_id,
        "form_name": ident.name if name is None else name,
        "form_phone": ident.phone if phone is None else phone,
        "email_error": EMAIL_ERRORS.get(errors.get("email")),
        "login_id_error": LOGIN_ID_ERRORS.get(errors.get("login_id")),
        "name_error": NAME_ERRORS.get(errors.get("name")),
        "phone_error": PHONE_ERRORS.get(errors.get("phone")),
        "edit": edit or bool(errors),
    }


def _popup_account():
    """The signed-in legacy account while the pop-up is open (during the period), else None."""
    account = _signed_in()
    if account is None or not legacy.popup_open(_phase()):
        return None
    return account


@bp.get("/identity")
def identity():
    """The pop-up's content: a page of its own without JavaScript, the dialog's body with htmx."""
    account = _popup_account()
    if account is None:
        return redirect(url_for("legacy.index"), 303)
    ident = legacy.identity(account)
    return render("legacy/identity.html", "legacy/_identity.html", ident=ident, account=account,
                  **_identity_form_context(ident, edit=request.args.get("edit") == "1"))


@bp.post("/identity")
@limiter.limit("20/hour", key_func=lambda: f"legacy-confirm:{session.get('legacy_account_id')}")
def confirm():
    """Confirm (or correct) the identity information, then mail the first-login link."""
    account = _popup_account()
    if account is None:
        return redirect(url_for("legacy.index"), 303)
    ident = legacy.identity(account)
    if ident.user is None:
        return redirect(url_for("legacy.index"), 303)
    email = (request.form.get("email") or "").strip() if "email" in request.form else ident.email
    login_id = (request.form.get("login_id") or "").strip() if "login_id" in request.form \
        else ident.login_id
    # Name and phone only from the Business Portal's edit form; the name is kept as typed (its
    # spaces matter), apart from the line break a browser may add.
    name = request.form["name"].strip("\r\n") if ident.is_business and "name" in request.form else None
    phone = request.form["phone"].strip() if ident.is_business and "phone" in request.form else None
    base_url = web_base_url()
    try:
        mail = legacy.confirm(account, email=email, login_id=login_id, name=name, phone=phone,
                              config=current_app.config, base_url=base_url, ip=client_ip())
    except legacy.ConfirmError as exc:
        # htmx swaps only 2xx answers: the fragment with its errors comes back as 200.
        return render("legacy/identity.html", "legacy/_identity.html", status=200 if is_htmx() else 400,
                      ident=ident,
                      account=account,
                      **_identity_form_context(ident, email=email, login_id=login_id, errors=exc.errors,
                                               name=name, phone=phone))
    session["legacy_sent_to"] = mail.recipient
    session["legacy_sent_portal"] = ident.portal
    if is_htmx():
        return render("legacy/sent.html", "legacy/_sent.html", masked=legacy.mask_email(mail.recipient),
                      portal=ident.portal)
    return redirect(url_for("legacy.sent"), 303)


@bp.get("/identity/sent")
def sent():
    to = session.get("legacy_sent_to")
    if _signed_in() is None or not to:
        return redirect(url_for("legacy.index"), 303)
    return render("legacy/sent.html", "legacy/_sent.html", masked=legacy.mask_email(to),
                  portal=session.get("legacy_sent_portal"))


@bp.route("/tickets", methods=["GET", "POST"])
def ticket_list():
    """Tickets of the legacy sign-in (guide: users created in the legacy portal file them here)."""
    account = _signed_in()
    if account is None:
        return redirect(url_for("legacy.index"), 303)
    user = account.user if account.user_id else None
    errors, subject, body, status = {}, "", "", 200
    if request.method == "POST":
        subject, body = request.form.get("subject", ""), request.form.get("body", "")
        try:
            tickets.file(filed_from=tickets.LEGACY, subject=subject, body=body, user=user,
                         legacy_account=account, ip=client_ip())
        except tickets.TicketError as exc:
            errors, status = exc.errors, 400
        else:
            return redirect(url_for("legacy.ticket_list", filed=1), 303)
    return render_template(
        "legacy/tickets.html", account=account, items=tickets.for_user(legacy_account=account),
        subject=subject, body=body, filed=request.args.get("filed") == "1",
        subject_error=TICKET_ERRORS["subject"].get(errors.get("subject")),
        body_error=TICKET_ERRORS["body"].get(errors.get("body"))), status


@bp.post("/signout")
def signout():
    session.pop("legacy_account_id", None)
    session.pop("legacy_candidates", None)
    session.pop("legacy_sent_to", None)
    return redirect(url_for("legacy.index"), 303)


@bp.route("/<path:rest>", methods=["GET", "POST"])
def other(rest):
    """Unknown legacy addresses: after the period they redirect (above); before it they do not exist."""
    abort(404)
