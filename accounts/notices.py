"""Advance notices (事前周知) to child contract users before the migration period (SPEC 6).

The mail says which new portal the user moves to, from when (the period's start) and the NEW
login ID. Who may send to whom is accounts.scope's decision: the caller passes the principal and
the scope condition goes into the query, so an id outside the scope is simply not found.
"""
from flask_babel import lazy_gettext as _l

from . import audit, fields, period
from . import scope as sc
from .clock import format_jst
from .db import database
from .models import SDPF, Contract, Mail, User

KIND = "advance_notice"
SUBJECT = _l("[Smart Data Platform] Your new portal and login ID")
MAX_PER_SEND = 5000


class NoticeError(ValueError):
    """Sending is not possible now (``code``: no_period / after / nobody)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def child_users(principal):
    """Users of child contracts (SDPF Portal) the principal may notify: a query, not a list."""
    return User.select().where(sc.user_condition(principal) & (User.portal == SDPF))


def listing(principal, contract_id: int, after: int | None, limit: int):
    """One keyset page of a child contract's users, only the columns the list shows (fast rows)."""
    q = (User.select(User.id, User.login_id, User.legacy_login_id, User.email)
         .where(sc.user_condition(principal) & (User.portal == SDPF) & (User.contract == contract_id)))
    if after:
        q = q.where(User.id > after)
    return list(q.order_by(User.id).limit(limit).namedtuples())


def child_contracts(principal):
    return list(Contract.select(Contract.id, Contract.ecid, Contract.name)
                .where(sc.contract_condition(principal) & Contract.parent.is_null(False))
                .order_by(Contract.ecid).namedtuples())


def latest_notices(user_ids) -> dict:
    """user id -> the newest advance-notice Mail (its delivery state is the mail's status)."""
    latest = {}
    if not user_ids:
        return latest
    for m in (Mail.select(Mail.id, Mail.user, Mail.created_at, Mail.status)
              .where((Mail.kind == KIND) & Mail.user.in_(list(user_ids)))
              .order_by(Mail.created_at, Mail.id).namedtuples()):
        latest[m.user] = m
    return latest


def send(principal, *, user_ids=(), contract_ids=(), base_url: str, ip=None) -> int:
    """Write one advance-notice mail per selected user in scope (one transaction). Returns the count."""
    current = period.current()
    if current is None:
        raise NoticeError("no_period")
    if period.phase(period=current) == period.AFTER:
        raise NoticeError("after")
    uids = [n for n in map(fields.whole_number, user_ids) if n is not None]
    cids = [n for n in map(fields.whole_number, contract_ids) if n is not None]
    if not uids and not cids:
        raise NoticeError("nobody")
    cond = User.id.in_(uids) if uids else None
    if cids:
        by_contract = User.contract.in_(cids)
        cond = by_contract if cond is None else (cond | by_contract)
    users = list(child_users(principal).where(cond).order_by(User.id).limit(MAX_PER_SEND))
    if users:
        contracts = {c.id: c for c in Contract.select().where(
            Contract.id.in_(list({u.contract_id for u in users})))}
        for u in users:  # the mail names the partner: no query per user
            u.contract = contracts[u.contract_id]
    if not users:
        raise NoticeError("nobody")
    from .outbox import render_and_enqueue

    portal_url = base_url.rstrip("/") + "/sdpf/"
    with database.atomic():
        for u in users:
            m = render_and_enqueue(
                "advance_notice", recipient=u.email, subject=SUBJECT, kind=KIND, user=u,
                language=u.language, user_obj=u, portal_url=portal_url,
                start=format_jst(current.start_at), end=format_jst(current.end_at),
                legacy_url=base_url.rstrip("/") + "/legacy/")
            audit.record(principal, "advance_notice_sent", target_user=u, ip=ip,
                         detail=f"mail {m.message_id}")
    return len(users)
