"""Support tickets, and where a user may file them during the migration period (guide p. 2).

During the period a Business Portal user created in the legacy Login Portal files tickets only
there, and one created in the Business Portal only from the Business Portal. The guide sets no
rule for SDPF users: they file from the SDPF Portal. Outside the period, from the user's own portal.
"""
from . import audit, period
from .db import database
from .models import BUSINESS, ORIGIN_LEGACY, Ticket

LEGACY = "legacy"
MAX_SUBJECT = 200
MAX_BODY = 5000


def place_for(user, now=None) -> str:
    """Where this new-portal user files tickets now: ``legacy``, ``business`` or ``sdpf``."""
    if user.portal == BUSINESS and user.origin == ORIGIN_LEGACY and period.phase(now) == period.DURING:
        return LEGACY
    return user.portal


def legacy_may_file(now=None) -> bool:
    """The legacy portal takes tickets while it is open (before and during the period)."""
    return period.phase(now) != period.AFTER


def check(subject: str, body: str) -> dict:
    errors = {}
    if not subject:
        errors["subject"] = "required"
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = "too_long"
    if not body:
        errors["body"] = "required"
    elif len(body) > MAX_BODY:
        errors["body"] = "too_long"
    return errors


class TicketError(ValueError):
    def __init__(self, errors: dict):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def file(*, filed_from: str, subject: str, body: str, user=None, legacy_account=None, ip=None) -> Ticket:
    """Write a ticket and its audit entry. The caller has checked that ``filed_from`` is allowed."""
    subject, body = (subject or "").strip(), (body or "").strip()
    errors = check(subject, body)
    if errors:
        raise TicketError(errors)
    with database.atomic():
        ticket = Ticket.create(user=user, legacy_account=legacy_account, filed_from=filed_from,
                               subject=subject, body=body)
        actor = user if user is not None else f"legacy:{legacy_account.login_id}"
        audit.record(actor, "ticket_filed", target_user=user, ip=ip,
                     detail=f"ticket {ticket.id} from {filed_from}")
    return ticket


def for_user(user=None, legacy_account=None, limit=50) -> list[Ticket]:
    """A user's tickets, newest first: a legacy sign-in also sees those of its linked new user."""
    q = Ticket.select()
    if legacy_account is not None:
        cond = Ticket.legacy_account == legacy_account.id
        if legacy_account.user_id:
            cond = cond | (Ticket.user == legacy_account.user_id)
        q = q.where(cond)
    else:
        q = q.where(Ticket.user == user.id)
    return list(q.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
