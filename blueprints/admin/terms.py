"""Console terms area (operator only): the published versions with their acceptance counts, a
version's text, a preview, and publishing the next version from a form (SPEC 12).

The same rules as ``flask --app app publish-terms`` (accounts.terms): UTF-8 text or Markdown shown
to users through a renderer that escapes everything, a time in JST (empty: now).
"""
from flask import abort, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import scope as sc
from accounts import terms
from accounts.clock import utcnow
from blueprints.web import client_ip, render

from . import bp, nav_item
from .guard import console_required, principal

ERRORS = {
    ("title", "empty"): _l("Enter a title."),
    ("title", "too_long"): _l("The title may be 255 characters at most."),
    ("title", "binary"): _l("The title must be one line of text."),
    ("body", "empty"): _l("Enter the text of the terms."),
    ("body", "too_large"): _l("The text is too long (512 KiB at most)."),
    ("body", "binary"): _l("The text holds control characters; paste plain text."),
    ("body", "busy"): _l("Another version was published at the same moment. Try again."),
    ("at", "unparsable"): _l("Enter a date and time such as 2026-12-01 00:00, or leave it empty for now."),
    ("at", "order"): _l("The time is before the previous version's: versions come into force in order."),
}


def _form():
    return {"title": request.form.get("title", ""), "body": request.form.get("body", ""),
            "at": request.form.get("at", "")}


def _page(values=None, errors=None, preview=None, status=200):
    values = values or {"title": "", "body": "", "at": ""}
    return render("admin/terms.html", status=status, versions=terms.versions(),
                  in_force=terms.in_force(), now=utcnow(), values=values, errors=errors or {},
                  preview=preview)


@bp.get("/terms")
@console_required(sc.SETTINGS)
def terms_page():
    return _page()


@bp.post("/terms/preview")
@console_required(sc.SETTINGS)
def terms_preview():
    """The text as users will see it; writes nothing (htmx: the preview panel only)."""
    values = _form()
    errors = {}
    try:
        body = terms.check_body(values["body"])
    except terms.TermsError as exc:
        errors["body"] = ERRORS[(exc.field, exc.code)]
        body = ""
    return render("admin/terms.html", "admin/_terms_preview.html",
                  status=200, versions=terms.versions(), in_force=terms.in_force(), now=utcnow(),
                  values=values, errors=errors, preview=terms.render(body) if body else None,
                  preview_title=values["title"])


@bp.post("/terms")
@console_required(sc.SETTINGS)
def terms_publish():
    values = _form()
    errors = {}
    at = None
    try:
        at = terms.parse_at(values["at"])
    except terms.TermsError as exc:
        errors["at"] = ERRORS[(exc.field, exc.code)]
    for check, name in ((terms.check_title, "title"), (terms.check_body, "body")):
        try:
            check(values[name])
        except terms.TermsError as exc:
            errors[name] = ERRORS[(exc.field, exc.code)]
    if not errors:
        try:
            published = terms.publish(values["title"], values["body"], at=at, actor=principal(),
                                      ip=client_ip())
        except terms.TermsError as exc:
            errors[exc.field] = ERRORS[(exc.field, exc.code)]
    if errors:
        return _page(values, errors, status=422)
    flash(_l("Version %(version)d of the terms was published. Users agree to it at their next sign-in "
             "once it is in force.", version=published.version), "ok")
    return redirect(url_for("admin.terms_page"), 303)


@bp.get("/terms/<int:version>")
@console_required(sc.SETTINGS)
def terms_version(version):
    found = terms.by_version(version)
    if found is None:
        abort(404)
    return render("admin/terms_version.html", terms=found, body=terms.render(found.body),
                  now=utcnow(), in_force=terms.in_force())


nav_item("admin.terms_page", _l("Terms"), sc.SETTINGS, order=62)
