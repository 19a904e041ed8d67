"""Advance notices (事前周知): operator for any parent's children, parent admins for their own.

The list shows, per child user, who received a notice, when, and its delivery state (from the
``Mail`` rows of kind ``advance_notice``).
"""
from flask import flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import fields, notices, period
from accounts import scope as sc
from blueprints.web import base_url, client_ip

from . import bp, nav_item
from .guard import console_required, principal

PAGE_SIZE = 100
ERRORS = {
    "no_period": _l("Set the migration period first: the notice states the date the new portal opens."),
    "after": _l("The migration period is over: advance notices are no longer sent."),
    "nobody": _l("Select at least one user or child contract."),
}


@bp.get("/notices")
@console_required(sc.REMIND)
def notices_list():
    """One child contract at a time (keyset pages over its users): fast with a million users."""
    who = principal()
    contracts = notices.child_contracts(who)
    contract_id = fields.whole_number(request.args.get("contract"))
    if contract_id not in {c.id for c in contracts}:
        contract_id = contracts[0].id if contracts else None
    after = fields.whole_number(request.args.get("after"))
    users = notices.listing(who, contract_id, after, PAGE_SIZE + 1) if contract_id else []
    more = len(users) > PAGE_SIZE
    users = users[:PAGE_SIZE]
    current = period.current()
    return render_template(
        "admin/notices.html", contracts=contracts, users=users, contract_id=contract_id,
        contract=next((c for c in contracts if c.id == contract_id), None),
        sent=notices.latest_notices([u.id for u in users]), current=current,
        phase=period.phase(period=current),
        next_after=users[-1].id if more else None)


@bp.post("/notices/send")
@console_required(sc.REMIND)
def notices_send():
    who = principal()
    try:
        count = notices.send(who, user_ids=request.form.getlist("user"),
                             contract_ids=request.form.getlist("contract"),
                             base_url=base_url(), ip=client_ip())
    except notices.NoticeError as exc:
        flash(ERRORS[exc.code], "error")
    else:
        flash(_l("Advance notice sent to %(count)d users.", count=count), "ok")
    back = fields.whole_number(request.form.get("back_contract"))
    return redirect(url_for("admin.notices_list", contract=back) if back else url_for("admin.notices_list"),
                    303)


nav_item("admin.notices_list", _l("Advance notices"), sc.REMIND, order=25)
