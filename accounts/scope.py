"""Who may see and change whom (SPEC 3): one place, used by every console view and query.

- operator: every user and contract, every action (contracts, staff, terms, period included);
- helpdesk: every user and contract, read-only plus "send reset link";
- parent contract admin (Business Portal user with the admin flag, first login done): users of its
  own contract and of all its child contracts (those contracts' pages read-only);
- child contract admin (SDPF user with the admin flag, first login done): users of its contract
  (its contract's page read-only);
- anyone else: nobody.

Out-of-scope users are answered 404 exactly like missing ones: callers use ``get_user_in_scope``.
"""
from .models import Contract, Staff, User

OPERATOR = "operator"
HELPDESK = "helpdesk"
PARENT_ADMIN = "parent_admin"
CHILD_ADMIN = "child_admin"

# What each role may do to a user in its scope.
READ = "read"
SEND_RESET = "send_reset"
EDIT = "edit"          # e-mail, login ID, name, phone
RESET = "reset"        # 2-step reset, trusted browsers, unlock, disable/enable
CONTACT = "contact"
REMIND = "remind"      # migration progress reminders, advance notices
SETTINGS = "settings"  # migration period, terms versions: operator only
CONTRACT_EDIT = "contract_edit"  # rename a contract, grant/revoke the admin role: operator only
STAFF = "staff"        # staff accounts (list, disable, unlock, reset TOTP): operator only

PERMISSIONS = {
    OPERATOR: {READ, SEND_RESET, EDIT, RESET, CONTACT, REMIND, SETTINGS, CONTRACT_EDIT, STAFF},
    HELPDESK: {READ, SEND_RESET},
    PARENT_ADMIN: {READ, SEND_RESET, EDIT, RESET, CONTACT, REMIND},
    CHILD_ADMIN: {READ, SEND_RESET, EDIT, RESET, CONTACT},
}


def role_of(principal) -> str | None:
    """The console role of a signed-in principal, or None when it may not use the console."""
    if isinstance(principal, Staff):
        if principal.disabled:
            return None
        return principal.role if principal.role in (OPERATOR, HELPDESK) else None
    if isinstance(principal, User):
        if not principal.is_admin or principal.disabled or principal.first_login_done_at is None:
            return None
        return PARENT_ADMIN if principal.contract.parent_id is None else CHILD_ADMIN
    return None


def may(principal, action: str) -> bool:
    role = role_of(principal)
    return role is not None and action in PERMISSIONS[role]


def contract_ids_in_scope(principal) -> list[int] | None:
    """Contract ids the principal covers; None means all contracts (staff)."""
    role = role_of(principal)
    if role in (OPERATOR, HELPDESK):
        return None
    if role == PARENT_ADMIN:
        children = [c.id for c in
                    Contract.select(Contract.id).where(Contract.parent == principal.contract_id)]
        return [principal.contract_id, *children]
    if role == CHILD_ADMIN:
        return [principal.contract_id]
    return []


_ASK = object()


def user_condition(principal, ids=_ASK):
    """A peewee expression restricting ``User`` rows to the principal's scope (put it IN the query).
    ``ids``: the principal's contract_ids_in_scope when the caller has them already."""
    ids = contract_ids_in_scope(principal) if ids is _ASK else ids
    if ids is None:
        return User.id.is_null(False)
    if not ids:
        return User.id.is_null(True)  # matches nothing
    if len(ids) == 1:
        return User.contract == ids[0]
    return User.contract.in_(ids)


def contract_condition(principal, ids=_ASK):
    ids = contract_ids_in_scope(principal) if ids is _ASK else ids
    if ids is None:
        return Contract.id.is_null(False)
    if not ids:
        return Contract.id.is_null(True)
    return Contract.id.in_(ids)


def get_user_in_scope(principal, user_id) -> User | None:
    """The user if it exists and the principal may see it; None otherwise (answer 404 either way)."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return User.select().where((User.id == user_id) & user_condition(principal)).first()


def admins_for(user: User) -> list[User]:
    """Contract admins who can help this user (finished their own first login): SPEC 5.2.

    Business users: other admins of their own contract. SDPF users: their child contract's
    admins, then the partner's (parent contract's) admins.
    """
    contract_ids = [user.contract_id]
    if user.contract.parent_id is not None:
        contract_ids.append(user.contract.parent_id)
    return list(User.select().where(
        User.contract.in_(contract_ids) & (User.is_admin == True)  # noqa: E712
        & User.first_login_done_at.is_null(False) & (User.disabled == False)  # noqa: E712
        & (User.id != user.id)))


def get_contract_in_scope(principal, ecid) -> Contract | None:
    """The contract if it exists and the principal may see it; None otherwise (answer 404 either way)."""
    if not isinstance(ecid, str) or not ecid or len(ecid) > 14:
        return None
    return Contract.select().where((Contract.ecid == ecid.lower())
                                   & contract_condition(principal)).first()
