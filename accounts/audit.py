"""The audit trail: one append-only entry per change, reset and sign-in step."""
from .db import insert_row
from .models import AuditEntry, Staff, User


def actor_fields(actor) -> dict:
    """Who acted: a portal user, a staff account, or the system (None / a label string)."""
    if isinstance(actor, User):
        return {"actor_kind": "user", "actor_id": actor.id,
                "actor_label": f"{actor.portal}:{actor.login_id}"}
    if isinstance(actor, Staff):
        return {"actor_kind": "staff", "actor_id": actor.id,
                "actor_label": f"staff:{actor.login_id}"}
    return {"actor_kind": "system", "actor_id": None, "actor_label": actor or "system"}


def record(actor, action: str, *, target_user=None, target_contract=None, field=None,
           old=None, new=None, ip=None, detail=None) -> AuditEntry:
    """Write one entry; call inside the transaction of the change it describes."""
    if target_contract is None and target_user is not None:
        target_contract = target_user.contract_id
    return insert_row(
        AuditEntry,
        action=action,
        target_user=target_user,
        target_contract=target_contract,
        field=field,
        old_value=None if old is None else str(old),
        new_value=None if new is None else str(new),
        ip=ip,
        detail=detail,
        **actor_fields(actor),
    )
