"""Shared set-up for the console tests: a contract tree, one principal per role, sign-in helpers."""
from dataclasses import dataclass

from accounts.models import Staff
from tests.helpers import gen_contract, gen_user


@dataclass
class World:
    parent: object
    child: object
    other_parent: object
    other_child: object
    operator: object
    helpdesk: object
    parent_admin: object
    child_admin: object
    plain: object
    target_child: object     # in every contract admin's scope (the child admin's contract)
    target_other: object     # out of scope of the contract admins
    target_parent: object    # parent contract user: in the parent admin's scope only


def make_world() -> World:
    parent = gen_contract(ecid="ecid1000000001", name="親契約A")
    child = gen_contract(parent=parent, ecid="ecid1000000002", name="子契約A1")
    other_parent = gen_contract(ecid="ecid2000000001", name="親契約B")
    other_child = gen_contract(parent=other_parent, ecid="ecid2000000002", name="子契約B1")
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    helpdesk = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk", password_hash="x")
    parent_admin = gen_user(parent, login_id="padmin", is_admin=True, first_login_done=True)
    child_admin = gen_user(child, login_id="cadmin", is_admin=True, first_login_done=True)
    plain = gen_user(child, login_id="plain", first_login_done=True)
    target_child = gen_user(child, login_id="target-child", email="tc@example.jp", name="佐藤\u3000一郎",
                            legacy=True, legacy_login_id="target", phone="0312345678")
    target_other = gen_user(other_child, login_id="target-other", email="to@example.jp")
    target_parent = gen_user(parent, login_id="target-parent", email="tp@example.jp")
    return World(parent, child, other_parent, other_child, operator, helpdesk, parent_admin, child_admin,
                 plain, target_child, target_other, target_parent)


def sign_in(client, principal):
    """Sign a principal in by putting Flask-Login's identity into its session (the sign-in pages
    themselves are tested in the portal and console tests). The session is a server-side row
    (blueprints.sessions), created here exactly as a real sign-in creates it."""
    with client.session_transaction() as s:
        s.clear()
        if principal is not None:
            s["_user_id"] = principal.get_id()
            s["_fresh"] = True


def page_token(client, path="/admin/login"):
    from tests.helpers import csrf_token

    return csrf_token(client.get(path).get_data(as_text=True))
