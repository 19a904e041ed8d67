"""Reset requests and "ask my administrator" requests: recorded by the web, answered by the worker.

SPEC 11.8: the identity check answers in the same time whether or not the identity matched,
without sleeping in the request. The web request only inserts what was typed (``record_*``) and
shows the generic answer; the worker (``process_pending``, run by ``flask deliver-mail`` and by
``make run``'s background thread) does the matching and writes the reset mail or the admins'
mails through the outbox. Each request is claimed with a conditional update inside its own
transaction, so two workers never answer one request twice and a crash leaves it pending.

A matching identity gets at most ``MAX_RESET_MAILS`` reset mails per ``RESET_MAIL_WINDOW``: a
stranger who knows everything about someone cannot flood their mailbox, and one who knows only a
login ID cannot keep the owner from resetting (non-matching requests never count against them).
"""
import datetime

from flask_babel import lazy_gettext as _l

from . import audit, identity, outbox, period, portals, recovery, scope
from .clock import utcnow
from .db import database
from .models import IdentityRequest, Mail, User

RESET = "reset"
ASK_ADMIN = "ask_admin"
MAX_RESET_MAILS = 5
RESET_MAIL_WINDOW = datetime.timedelta(minutes=15)
MAX_MESSAGE = 2000


def record_reset(portal: str, values: dict, *, ip: str = "") -> IdentityRequest:
    """One insert: what the user typed into the identity check."""
    return IdentityRequest.create(
        kind=RESET, portal=portal, login_id=(values.get("login_id") or "")[:255],
        email=(values.get("email") or "")[:255], name=(values.get("name") or "")[:255],
        phone=(values.get("phone") or "")[:64], ip=(ip or "")[:64])


def record_ask_admin(portal: str, login_id: str, message: str, *, ip: str = "") -> IdentityRequest:
    return IdentityRequest.create(kind=ASK_ADMIN, portal=portal, login_id=login_id[:255],
                                  message=message[:MAX_MESSAGE], ip=(ip or "")[:64])


KEEP_DAYS = 7  # answered requests hold what someone typed (names, addresses): kept a week


def clean_up(now=None) -> int:
    """Delete answered requests older than ``KEEP_DAYS`` (the audit log keeps what happened)."""
    cutoff = (now or utcnow()) - datetime.timedelta(days=KEEP_DAYS)
    return (IdentityRequest.delete()
            .where(IdentityRequest.processed_at.is_null(False) & (IdentityRequest.processed_at < cutoff))
            .execute())


def process_pending(config, *, limit: int = 200, now=None) -> int:
    """Answer up to ``limit`` pending requests, oldest first; returns how many were answered."""
    ids = [r.id for r in IdentityRequest.select(IdentityRequest.id)
           .where(IdentityRequest.processed_at.is_null()).order_by(IdentityRequest.id).limit(limit)]
    done = 0
    for request_id in ids:
        with database.atomic():
            claimed = (IdentityRequest.update(processed_at=now or utcnow())
                       .where((IdentityRequest.id == request_id)
                              & IdentityRequest.processed_at.is_null()).execute())
            if not claimed:
                continue  # another worker has it
            req = IdentityRequest.get_by_id(request_id)
            outcome = (_answer_reset(req, config, now) if req.kind == RESET
                       else _answer_ask_admin(req, config))
            IdentityRequest.update(outcome=outcome).where(IdentityRequest.id == request_id).execute()
        done += 1
    return done


def _answer_reset(req: IdentityRequest, config, now=None) -> str:
    values = {"login_id": req.login_id, "email": req.email, "name": req.name, "phone": req.phone}
    user = identity.find_matching_user(req.portal, values)
    if user is None:
        known = User.by_login_id(req.portal, req.login_id) if req.login_id else None
        audit.record(known or "anonymous", "reset_request_refused", target_user=known, ip=req.ip,
                     detail="identity mismatch")
        return "mismatch"
    if user.disabled or not period.first_login_open_for(user, now):
        reason = "disabled" if user.disabled else "before the migration period"
        audit.record(user, "reset_request_refused", target_user=user, ip=req.ip, detail=reason)
        return "refused"
    since = (now or utcnow()) - RESET_MAIL_WINDOW
    recent = Mail.select().where((Mail.user == user) & (Mail.kind == "reset")
                                 & (Mail.created_at > since)).count()
    if recent >= MAX_RESET_MAILS:
        audit.record(user, "reset_request_refused", target_user=user, ip=req.ip,
                     detail=f"{recent} reset mails in the last {RESET_MAIL_WINDOW.seconds // 60} min")
        return "too_many"
    recovery.send_reset_link(user, config=config, base_url=config["BASE_URL"], actor=user, ip=req.ip,
                             action="reset_requested")
    return "sent"


def _answer_ask_admin(req: IdentityRequest, config) -> str:
    user = User.by_login_id(req.portal, req.login_id) if req.login_id else None
    if user is None:
        return "unknown"
    admins = scope.admins_for(user)
    base = config["BASE_URL"].rstrip("/")
    for admin in admins:
        outbox.render_and_enqueue(
            "ask_admin", recipient=admin.email, kind="ask_admin", user=admin, language=admin.language,
            subject=_l("[%(portal)s] A user asks for help with signing in",
                       portal=portals.display_name(req.portal)),
            requester=user, admin=admin, message=req.message, link=f"{base}/admin/users/{user.id}",
            portal=req.portal)
    audit.record(user, "admin_help_requested", target_user=user, ip=req.ip,
                 detail=f"admins notified: {len(admins)}")
    return f"admins {len(admins)}"
