"""Migration progress for parent admins (and the operator): per child contract, first logins done
and pending, read from the counters kept by the writers (no counting per page); reminders; CSV.
"""
from flask import abort, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import console, fields, period, scope
from accounts.clock import format_jst
from accounts.models import Contract, User
from blueprints.web import base_url, client_ip, render

from . import bp, nav_item
from .csvexport import stream_csv
from .guard import console_required, principal

nav_item("admin.progress", _l("Migration progress"), scope.REMIND, order=20)
PAGE = 50


def _after():
    return fields.whole_number(request.args.get("after"), max_digits=11)


def _child_contracts(parent_ecid: str = ""):
    """Child contracts in the principal's scope (parent admin: its own children)."""
    Parent = Contract.alias()
    q = (Contract.select(Contract, Parent).join(Parent, on=(Contract.parent == Parent.id))
         .where(scope.contract_condition(principal()) & Contract.parent.is_null(False)))
    if parent_ecid:
        q = q.where(Parent.ecid == parent_ecid.lower())
    return q.order_by(Contract.id)


@bp.get("/progress")
@console_required(scope.REMIND)
def progress():
    parent = (request.args.get("parent") or "").strip()[:14]
    after = _after()
    q = _child_contracts(parent)
    if after:
        q = q.where(Contract.id > after)
    rows = list(q.limit(PAGE + 1))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render("admin/progress.html", rows=rows, parent=parent,
                  next_after=rows[-1].id if more and rows else None)


@bp.get("/progress.csv")
@console_required(scope.REMIND)
def progress_csv():
    q = _child_contracts((request.args.get("parent") or "").strip()[:14])

    def rows():
        for c in q.iterator():
            yield [c.parent.ecid, c.ecid, c.name, c.users_total, c.users_first_login_done,
                   c.users_total - c.users_first_login_done]

    return stream_csv("migration-progress.csv",
                      ["parent_ecid", "contract_ecid", "contract_name", "users_total",
                       "first_login_done", "first_login_pending"], rows())


def _contract_or_404(ecid):
    contract = (Contract.select()
                .where((Contract.ecid == ecid.lower()) & scope.contract_condition(principal())).first())
    if contract is None:
        abort(404)
    return contract


@bp.get("/progress/<ecid>")
@console_required(scope.REMIND)
def progress_contract(ecid):
    contract = _contract_or_404(ecid)
    after = _after()
    q = User.select().where((User.contract == contract) & scope.user_condition(principal())
                            & User.first_login_done_at.is_null(True))
    if after:
        q = q.where(User.id > after)
    users = list(q.order_by(User.id).limit(PAGE + 1))
    more = len(users) > PAGE
    users = users[:PAGE]
    current = period.current()
    opens_at = current.start_at if period.phase(period=current) == period.BEFORE else None
    return render("admin/progress_contract.html", contract=contract, users=users, opens_at=opens_at,
                  next_after=users[-1].id if more and users else None)


@bp.post("/progress/<ecid>/remind")
@console_required(scope.REMIND)
def remind(ecid):
    contract = _contract_or_404(ecid)
    ids = request.form.getlist("user")
    if not ids:
        flash(_l("Select at least one user."), "error")
    else:
        try:
            sent = console.remind(principal(), ids, base_url=base_url(), ip=client_ip())
        except console.Invalid as exc:
            if exc.code != "not_yet_open":
                raise
            flash(_l("Migrated users cannot start their first login before the migration period: "
                     "reminders can be sent to them from %(date)s.", date=format_jst(exc.current)), "error")
        else:
            flash(_l("Reminder mails queued: %(count)d.", count=sent), "ok")
    return redirect(url_for("admin.progress_contract", ecid=contract.ecid), 303)
