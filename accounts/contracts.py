"""Contracts in the console (SPEC 12): find one, see its tree, administrators and services; rename it;
grant or revoke the administrator role of one of its users.

Built for 100,000 contracts and a million users: a search is a B-tree range on the ECID or on
(name, id) with keyset pages and no total count; a contract's users are not listed here (their
counters are shown and the console's user search, filtered by the contract, lists them).
Seeing follows accounts.scope (parent admins: their tree; child admins: their contract; staff:
all); changing is the operator's alone (``scope.CONTRACT_EDIT``).
"""
import re
from dataclasses import dataclass, field

from peewee import JOIN, Tuple

from . import audit, fields, outbox, scope
from .clock import utcnow
from .db import database, is_postgres
from .models import Contract, Service, User

PAGE_SIZE = 25
CHILDREN_PAGE = 50
MAX_ADMINS_SHOWN = 200
MAX_NAME = 255
HIGH = "\uffff"
ECID_PREFIX_RE = re.compile(r"^ecid\d{0,10}\Z", re.IGNORECASE)


class ContractError(Exception):
    """A refused change; ``code`` names the reason for the screen's message."""

    def __init__(self, code: str, field: str | None = None):
        super().__init__(code)
        self.code = code
        self.field = field


class NotFound(ContractError):
    """Missing or out of scope: the same answer for both."""

    def __init__(self):
        super().__init__("not_found")


@dataclass
class Found:
    contracts: list = field(default_factory=list)
    next_after: int | None = None  # contract id to continue after; None on the last page
    by: str = "ecid"               # ecid | name


def search(principal, q: str = "", after: int | None = None, limit: int = PAGE_SIZE) -> Found:
    """Contracts in the principal's scope whose ECID or name starts with ``q`` (keyset pages).

    ``q`` that looks like an ECID prefix (``ecid`` + digits) searches ECIDs, anything else names;
    an empty ``q`` lists by ECID. ``after`` is the id of the last contract of the previous page.
    """
    q = (q or "").strip()[:MAX_NAME]
    parent = Contract.alias()
    base = (Contract.select(Contract.id, Contract.ecid, Contract.name, Contract.parent,
                            Contract.users_total, Contract.users_first_login_done,
                            parent.ecid.alias("parent_ecid"), parent.name.alias("parent_name"))
            .join(parent, on=(Contract.parent == parent.id), join_type=JOIN.LEFT_OUTER)
            .where(scope.contract_condition(principal)))
    anchor = Contract.get_or_none(Contract.id == after) if after else None
    if not q or ECID_PREFIX_RE.match(q):
        by = "ecid"
        key = q.lower()
        if key:
            base = base.where((Contract.ecid >= key) & (Contract.ecid < key + HIGH))
        if anchor is not None:
            base = base.where(Contract.ecid > anchor.ecid)
        base = base.order_by(Contract.ecid)
    else:
        by = "name"
        base = base.where((Contract.name >= q) & (Contract.name < q + HIGH))
        if anchor is not None:
            base = base.where(Tuple(Contract.name, Contract.id) > Tuple(anchor.name, anchor.id))
        base = base.order_by(Contract.name, Contract.id)
    rows = list(base.limit(limit + 1).objects())
    more = len(rows) > limit
    rows = rows[:limit]
    return Found(rows, rows[-1].id if more and rows else None, by)


@dataclass
class Page:
    contract: Contract
    parent: Contract | None
    parent_visible: bool       # the principal may open the parent's page
    children: list
    children_next_after: int | None
    admins: list
    services: list


def page(principal, ecid: str, children_after: int | None = None) -> Page:
    contract = scope.get_contract_in_scope(principal, ecid)
    if contract is None:
        raise NotFound()
    parent = contract.parent if contract.parent_id else None
    parent_visible = parent is not None and scope.get_contract_in_scope(principal, parent.ecid) is not None
    children_q = (Contract.select(Contract.id, Contract.ecid, Contract.name, Contract.users_total,
                                  Contract.users_first_login_done)
                  .where((Contract.parent == contract.id) & scope.contract_condition(principal)))
    if children_after:
        children_q = children_q.where(Contract.id > children_after)
    children = list(children_q.order_by(Contract.id).limit(CHILDREN_PAGE + 1))
    more = len(children) > CHILDREN_PAGE
    children = children[:CHILDREN_PAGE]
    admins = list(User.select(User.id, User.login_id, User.name, User.email, User.portal,
                              User.first_login_done_at, User.disabled, User.contract)
                  .where((User.contract == contract.id) & (User.is_admin == True))  # noqa: E712
                  .order_by(User.login_id_key).limit(MAX_ADMINS_SHOWN))
    services = list(Service.select().where(Service.contract == contract.id).order_by(Service.name))
    return Page(contract, parent, parent_visible, children,
                children[-1].id if more and children else None, admins, services)


def _require_edit(principal, ecid: str) -> Contract:
    if not scope.may(principal, scope.CONTRACT_EDIT):
        raise NotFound()
    contract = scope.get_contract_in_scope(principal, ecid)
    if contract is None:
        raise NotFound()
    return contract


def check_name(name: str) -> str:
    value = (name or "").strip()
    if not value:
        raise ContractError("required", "name")
    if len(value) > MAX_NAME:
        raise ContractError("too_long", "name")
    if fields.holds_control_characters(value):
        raise ContractError("name_format", "name")
    return value


def rename(principal, ecid: str, name: str, *, ip=None) -> Contract:
    """Give the contract a new display name (shown to its users, on mails naming the partner)."""
    contract = _require_edit(principal, ecid)
    new = check_name(name)
    if new == contract.name:
        return contract
    with database.atomic():
        Contract.update(name=new).where(Contract.id == contract.id).execute()
        audit.record(principal, "contract_renamed", target_contract=contract.id, field="name",
                     old=contract.name, new=new, ip=ip, detail=contract.ecid)
    return Contract.get_by_id(contract.id)


def _subject(granted: bool):
    from flask_babel import lazy_gettext as _l

    return (_l("You are now an administrator of your contract") if granted
            else _l("You are no longer an administrator of your contract"))


def set_admin(principal, ecid: str, *, grant: bool, user_id=None, login_id: str | None = None,
              base_url: str, ip=None) -> User:
    """Grant or revoke the administrator role of one user of this contract; the user is told by mail.

    The user is named by id (the revoke buttons) or by login ID (the grant form); a user of another
    contract is "not found", like one that does not exist.
    """
    contract = _require_edit(principal, ecid)
    q = User.select().where(User.contract == contract.id)
    if user_id is not None:
        try:
            q = q.where(User.id == int(user_id))
        except (TypeError, ValueError):
            raise ContractError("user_not_found", "login_id") from None
    else:
        key = (login_id or "").strip().lower()
        if not key:
            raise ContractError("required", "login_id")
        q = q.where(User.login_id_key == key)
    with database.atomic():
        user = (q.for_update() if is_postgres() else q).first()
        if user is None:
            raise ContractError("user_not_found", "login_id")
        if user.is_admin == grant:
            raise ContractError("already_admin" if grant else "not_admin", "login_id")
        User.update(is_admin=grant, version=User.version + 1, updated_at=utcnow()) \
            .where(User.id == user.id).execute()
        audit.record(principal, "admin_granted" if grant else "admin_revoked", target_user=user,
                     field="is_admin", old=not grant, new=grant, ip=ip, detail=contract.ecid)
        fresh = User.get_by_id(user.id)
        outbox.render_and_enqueue(
            "admin_role_changed", recipient=fresh.email, subject=_subject(grant), kind="admin_role",
            user=fresh, language=fresh.language, user_obj=fresh, granted=grant, contract=contract,
            portal=fresh.portal, portal_url=f"{base_url.rstrip('/')}/{fresh.portal}/",
            console_url=f"{base_url.rstrip('/')}/admin/")
    return fresh


@dataclass(frozen=True)
class HelpContacts:
    """Whom a signed-in user asks about their account (SPEC 5.2, 12): their contract's acting
    administrators by name and, for SDPF users, their partner by the parent contract's name."""

    contract_name: str
    admin_names: list
    partner_name: str | None


def help_contacts(user) -> HelpContacts:
    admins = [u.name or u.login_id for u in User.select(User.name, User.login_id).where(
        (User.contract == user.contract_id) & (User.is_admin == True)  # noqa: E712
        & User.first_login_done_at.is_null(False) & (User.disabled == False)  # noqa: E712
        & (User.id != user.id)).order_by(User.login_id_key).limit(5)]
    contract = user.contract
    partner = contract.parent.name if contract.parent_id else None
    return HelpContacts(contract.name, admins, partner)
