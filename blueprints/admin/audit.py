"""The audit log: every change and reset, filterable and exportable; the application offers no
way to edit or delete an entry. Contract admins see entries about contracts in their scope.
"""
import datetime

from flask import request
from flask_babel import lazy_gettext as _l

from accounts import fields, scope
from accounts.clock import format_jst, from_jst_naive
from accounts.models import AuditEntry
from blueprints.web import render

from . import bp, nav_item
from .csvexport import stream_csv
from .guard import console_required, principal

nav_item("admin.audit_log", _l("Audit log"), scope.READ, order=30)
PAGE = 50


def _date(name):
    raw = (request.args.get(name) or "").strip()
    try:
        return from_jst_naive(datetime.datetime.fromisoformat(raw)) if raw else None
    except ValueError:
        return None


def _filters():
    keys = ("action", "actor", "user", "since", "until")
    return {k: (request.args.get(k) or "").strip()[:100] for k in keys}


def _query():
    f = _filters()
    ids = scope.contract_ids_in_scope(principal())
    q = AuditEntry.select()
    if ids is not None:
        q = q.where(AuditEntry.target_contract.in_(ids or [0]))
    if f["action"]:
        q = q.where(AuditEntry.action == f["action"])
    if f["actor"]:
        q = q.where(AuditEntry.actor_label.contains(f["actor"]))
    if fields.whole_number(f["user"]) is not None:
        q = q.where(AuditEntry.target_user == fields.whole_number(f["user"]))
    since, until = _date("since"), _date("until")
    if since:
        q = q.where(AuditEntry.at >= since)
    if until:
        # A date alone means "up to the end of that day".
        end = until + datetime.timedelta(days=1) if len(f["until"]) <= 10 else until
        q = q.where(AuditEntry.at < end)
    return q, f


@bp.get("/audit")
@console_required(scope.READ)
def audit_log():
    q, f = _query()
    before = fields.whole_number(request.args.get("before"))
    if before is not None:
        q = q.where(AuditEntry.id < before)
    entries = list(q.order_by(AuditEntry.id.desc()).limit(PAGE + 1))
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    args = {k: v for k, v in f.items() if v}
    return render("admin/audit.html", "admin/_audit_results.html", entries=entries, filters=f, args=args,
                  next_before=entries[-1].id if more and entries else None, show_target=True)


@bp.get("/audit.csv")
@console_required(scope.READ)
def audit_csv():
    q, _ = _query()

    def rows():
        for e in q.order_by(AuditEntry.id).iterator():
            yield [e.id, format_jst(e.at, True), e.actor_kind, e.actor_label, e.action,
                   e.target_user_id or "", e.target_contract_id or "", e.field or "",
                   "" if e.old_value is None else e.old_value, "" if e.new_value is None else e.new_value,
                   e.ip or "", e.detail or ""]

    return stream_csv("audit-log.csv", ["id", "time_jst", "actor_kind", "actor", "action", "target_user_id",
                                        "target_contract_id", "field", "old", "new", "ip", "detail"], rows())
