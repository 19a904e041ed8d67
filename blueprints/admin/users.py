"""Console users area: search, user page, click-to-edit corrections, resets, diagnosis, contact.

Views are thin: accounts.search, accounts.console and accounts.diagnosis hold the rules; every
query carries accounts.scope's condition, and a user out of scope answers 404 like a missing one.
"""
from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import console, diagnosis, fields, period, scope, search
from accounts.clock import format_jst, utcnow
from accounts.models import AuditEntry, LegacyAccount, Mail, MailAttempt, TrustedBrowser
from blueprints.web import FIELD_RULE_ERRORS, base_url, client_ip, is_htmx, render

from . import bp, nav_item
from .guard import console_required, principal

nav_item("admin.index", _l("Find users"), scope.READ, order=10)

FIELD_LABELS = {
    "email": _l("E-mail address"),
    "login_id": _l("Login ID"),
    "name": _l("Name"),
    "phone": _l("Phone number"),
}

ERRORS = {
    "required": _l("Enter a value."),
    "email_format": _l("Enter an e-mail address like name@example.jp (half-width characters)."),
    **FIELD_RULE_ERRORS,
    "login_id_taken": _l("This login ID is already used in this portal (upper and lower case count "
                         "as the same)."),
    "unknown_field": _l("This field cannot be changed here."),
    "disabled": _l("This user is disabled: enable the user first."),
    "too_long": _l("This is too long."),
    "line_break": _l("The subject must be one line (no line breaks)."),
}

NOT_YET_OPEN = _l("Migrated users cannot start their first login before the migration period: a reset "
                  "link can be sent from %(date)s.")

ACTION_LABELS = {
    console.SEND_RESET_LINK: _l("Send reset link"),
    console.RESET_2STEP: _l("Reset two-step verification"),
    console.CLEAR_TRUSTED: _l("Clear trusted browsers"),
    console.UNLOCK: _l("Unlock"),
    console.DISABLE: _l("Disable"),
    console.ENABLE: _l("Enable"),
    console.END_SESSIONS: _l("Sign out everywhere"),
}

ACTION_EXPLAINED = {
    console.SEND_RESET_LINK: _l("A mail with a single-use link to set a new password (the first-login "
                                "link) goes to the user's registered e-mail address. Older links stop "
                                "working."),
    console.RESET_2STEP: _l("The user's two-step method, backup codes and trusted browsers are removed. "
                            "The user chooses a method again at the next sign-in."),
    console.CLEAR_TRUSTED: _l("Every browser that may skip the second step must pass it again."),
    console.UNLOCK: _l("The failed sign-in count is cleared and the user may sign in at once."),
    console.DISABLE: _l("The user can no longer sign in until enabled again."),
    console.ENABLE: _l("The user may sign in again."),
    console.END_SESSIONS: _l("Every browser where the user is signed in (or signing in) is signed out "
                             "at its next request."),
}

ACTION_DONE = {
    console.SEND_RESET_LINK: _l("The reset link was sent to %(email)s."),
    console.RESET_2STEP: _l("Two-step verification was reset."),
    console.CLEAR_TRUSTED: _l("Trusted browsers were cleared."),
    console.UNLOCK: _l("The user was unlocked."),
    console.DISABLE: _l("The user was disabled."),
    console.ENABLE: _l("The user was enabled."),
    console.END_SESSIONS: _l("The user was signed out everywhere."),
}


def _user_or_404(user_id):
    user = scope.get_user_in_scope(principal(), user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/")
@console_required(scope.READ)
def index():
    query = search.Query.from_args(request.args)
    page = search.search(principal(), query)
    return render("admin/users.html", "admin/_results.html", query=query, results=page)


def _page_context(user):
    who = principal()
    mails = list(Mail.select().where(Mail.user == user).order_by(Mail.created_at.desc(), Mail.id.desc())
                 .limit(30))
    attempts = {}
    if mails:
        for a in (MailAttempt.select().where(MailAttempt.mail.in_([m.id for m in mails]))
                  .order_by(MailAttempt.at, MailAttempt.id)):
            attempts.setdefault(a.mail_id, []).append(a)
    audit_entries = list(AuditEntry.select().where(AuditEntry.target_user == user)
                         .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(50))
    legacy = list(LegacyAccount.select().where(LegacyAccount.user == user))
    trusted = (TrustedBrowser.select().where((TrustedBrowser.user == user)
                                             & TrustedBrowser.revoked_at.is_null()
                                             & (TrustedBrowser.expires_at > utcnow())).count())
    return {
        "user": user, "contract": user.contract, "parent": user.contract.parent,
        "mails": mails, "attempts": attempts, "audit_entries": audit_entries, "legacy": legacy,
        "trusted_count": trusted, "reasons": diagnosis.diagnose(user),
        "may_edit": scope.may(who, scope.EDIT), "may_reset": scope.may(who, scope.RESET),
        "may_send_reset": scope.may(who, scope.SEND_RESET), "may_contact": scope.may(who, scope.CONTACT),
        "field_labels": FIELD_LABELS, "action_labels": ACTION_LABELS, "now": utcnow(),
        "reset_opens_at": period.first_login_opens_at(user),
    }


@bp.get("/users/<int:user_id>")
@console_required(scope.READ)
def user_page(user_id):
    user = _user_or_404(user_id)
    return render("admin/user.html", **_page_context(user))


@bp.get("/users/<int:user_id>/diagnosis")
@console_required(scope.READ)
def diagnosis_panel(user_id):
    user = _user_or_404(user_id)
    return render("admin/diagnosis.html", "admin/_diagnosis.html", **_page_context(user))


def _field_or_404(field):
    if field not in console.EDITABLE:
        abort(404)
    return field


def _page_version(user) -> int:
    """The version the page was loaded with (kept in links and forms), else the current one."""
    version = fields.whole_number(request.values.get("version"), max_digits=9)
    return user.version if version is None else version


@bp.get("/users/<int:user_id>/fields/<field>")
@console_required(scope.READ)
def field_show(user_id, field):
    user = _user_or_404(user_id)
    _field_or_404(field)
    if not is_htmx():
        return redirect(url_for("admin.user_page", user_id=user.id), 303)
    return render("admin/_field.html", user=user, field=field, version=_page_version(user),
                  field_labels=FIELD_LABELS, may_edit=scope.may(principal(), scope.EDIT))


@bp.get("/users/<int:user_id>/fields/<field>/edit")
@console_required(scope.EDIT)
def field_edit(user_id, field):
    user = _user_or_404(user_id)
    _field_or_404(field)
    ctx = {"user": user, "field": field, "version": _page_version(user), "value": getattr(user, field),
           "error": None, "conflict": None, "field_labels": FIELD_LABELS}
    return render("admin/edit_field.html", "admin/_field_edit.html", **ctx)


@bp.post("/users/<int:user_id>/fields/<field>/validate")
@console_required(scope.EDIT)
def field_validate(user_id, field):
    """Inline validation while typing: only the error text (empty when fine), same rules as saving."""
    user = _user_or_404(user_id)
    _field_or_404(field)
    code = console.validate(user, field, request.form.get("value", ""))
    response = current_app.make_response(str(ERRORS.get(code, "")) if code else "")
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    return response


@bp.post("/users/<int:user_id>/fields/<field>")
@console_required(scope.EDIT)
def field_save(user_id, field):
    user = _user_or_404(user_id)
    _field_or_404(field)
    value = request.form.get("value", "")
    try:
        fresh = console.update_field(principal(), user.id, field, value, request.form.get("version"),
                                     ip=client_ip())
    except console.Conflict as exc:
        current = exc.current
        return _edit_again(current, field, value, version=current.version, conflict=current)
    except console.Invalid as exc:
        return _edit_again(user, field, value, version=request.form.get("version", ""),
                           error=ERRORS.get(exc.code, ERRORS["required"]))
    except console.NotFound:
        abort(404)
    message = _l("%(field)s was saved.", field=FIELD_LABELS[field])
    if is_htmx():
        ctx = _page_context(fresh)
        return render("admin/_identity.html", saved_message=message, saved_field=field, **ctx)
    flash(message, "ok")
    return redirect(url_for("admin.user_page", user_id=fresh.id), 303)


def _edit_again(user, field, value, *, version, error=None, conflict=None):
    ctx = {"user": user, "field": field, "version": version, "value": value, "error": error,
           "conflict": conflict, "field_labels": FIELD_LABELS}
    if is_htmx():
        # Errors go back into the field being edited (htmx swaps only 2xx answers).
        response = render("admin/_field_edit.html", **ctx)
        response.headers["HX-Retarget"] = f"#field-{field}"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    return render("admin/edit_field.html", status=409 if conflict else 422, **ctx)


@bp.route("/users/<int:user_id>/reset-link", methods=["GET", "POST"])
@console_required(scope.SEND_RESET)
def send_reset_link(user_id):
    user = _user_or_404(user_id)
    action = console.SEND_RESET_LINK
    if request.method == "POST":
        try:
            console.send_reset_link(principal(), user.id, config=current_app.config,
                                    base_url=base_url(), ip=client_ip())
        except console.Invalid as exc:
            if exc.code == "not_yet_open":
                flash(NOT_YET_OPEN % {"date": format_jst(exc.current)}, "error")
            else:
                flash(ERRORS[exc.code], "error")
        else:
            flash(ACTION_DONE[action] % {"email": user.email}, "ok")
        return redirect(url_for("admin.user_page", user_id=user.id), 303)
    opens_at = period.first_login_opens_at(user)
    return render("admin/confirm.html", user=user, action=action, label=ACTION_LABELS[action],
                  explained=ACTION_EXPLAINED[action],
                  refused=NOT_YET_OPEN % {"date": format_jst(opens_at)} if opens_at else None,
                  form_action=url_for("admin.send_reset_link", user_id=user.id))


RESETS = (console.RESET_2STEP, console.CLEAR_TRUSTED, console.UNLOCK, console.DISABLE, console.ENABLE,
          console.END_SESSIONS)


@bp.route("/users/<int:user_id>/actions/<action>", methods=["GET", "POST"])
@console_required(scope.RESET)
def reset_action(user_id, action):
    user = _user_or_404(user_id)
    if action not in RESETS:
        abort(404)
    if request.method != "POST":
        return render("admin/confirm.html", user=user, action=action, label=ACTION_LABELS[action],
                      explained=ACTION_EXPLAINED[action],
                      form_action=url_for("admin.reset_action", user_id=user.id, action=action))
    console.reset(principal(), user.id, action, ip=client_ip())
    flash(ACTION_DONE[action], "ok")
    return redirect(url_for("admin.user_page", user_id=user.id), 303)


@bp.route("/users/<int:user_id>/contact", methods=["GET", "POST"])
@console_required(scope.CONTACT)
def contact(user_id):
    user = _user_or_404(user_id)
    subject, body, errors = "", "", {}
    if request.method == "POST":
        subject = request.form.get("subject", "")
        body = request.form.get("body", "")
        codes = console.validate_contact(subject, body)
        if not codes:
            console.contact(principal(), user.id, subject, body, base_url=base_url(), ip=client_ip())
            flash(_l("Your mail to %(email)s was queued; it is listed in the mail log.", email=user.email),
                  "ok")
            return redirect(url_for("admin.user_page", user_id=user.id), 303)
        errors = {k: ERRORS[v] for k, v in codes.items()}
    return render("admin/contact.html", status=422 if errors else 200, user=user, subject=subject,
                  body=body, errors=errors)
