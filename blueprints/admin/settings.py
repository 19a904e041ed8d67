"""Console settings (operator only): the migration period's start and end, entered and shown in JST."""
from flask import flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import period
from accounts import scope as sc
from blueprints.web import client_ip

from . import bp, nav_item
from .guard import console_required, principal

PERIOD_ERRORS = {
    "required": _l("Enter a date and time."),
    "unparsable": _l("Enter a date and time such as 2026-12-01 00:00."),
    "order": _l("The end must be after the start."),
}


def _page(start="", end="", errors=None, status=200, confirm_clear=False):
    current = period.current()
    return render_template(
        "admin/settings.html", current=current, phase=period.phase(period=current),
        confirm_clear=confirm_clear and current is not None,
        start=start if start or errors else period.to_jst_input(current.start_at if current else None),
        end=end if end or errors else period.to_jst_input(current.end_at if current else None),
        errors=errors or {}), status


@bp.get("/settings")
@console_required(sc.SETTINGS)
def settings():
    return _page()


@bp.post("/settings/migration-period")
@console_required(sc.SETTINGS)
def set_migration_period():
    """Save the period (JST), or clear it; refused input keeps the old period and says why."""
    who = principal()
    if request.form.get("action") == "clear":
        if request.form.get("confirmed") != "1":
            # Removing the period closes the Login Portal at once: ask first (works without JS).
            return _page(confirm_clear=True)
        period.remove(who, ip=client_ip())
        flash(_l("The migration period was removed: the new portals are open and the Login Portal "
                 "is closed."), "ok")
        return redirect(url_for("admin.settings"), 303)
    start, end = request.form.get("start", "").strip(), request.form.get("end", "").strip()
    errors = {}
    values = {}
    for name, text in (("start", start), ("end", end)):
        try:
            values[name] = period.parse_time(text, name)
        except period.PeriodError as exc:
            errors[name] = PERIOD_ERRORS[exc.code]
    if not errors:
        try:
            period.change(who, values["start"], values["end"], ip=client_ip())
        except period.PeriodError as exc:
            errors[exc.field or "end"] = PERIOD_ERRORS[exc.code]
    if errors:
        return _page(start, end, errors, status=400)
    flash(_l("The migration period was saved."), "ok")
    return redirect(url_for("admin.settings"), 303)


nav_item("admin.settings", _l("Migration period"), sc.SETTINGS, order=60)
