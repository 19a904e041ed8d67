"""Console contracts area: find a contract by ECID or name, see its parent, children,
administrators, users (through the user search) and services; the operator renames it and grants
or revokes the administrator role (SPEC 12).

Everyone who may use the console sees the contracts in their scope, read-only; only the operator
changes anything (accounts.scope.CONTRACT_EDIT). A contract out of scope answers 404 like one that
does not exist.
"""
from flask import abort, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import contracts as ct
from accounts import fields, scope
from blueprints.web import base_url, client_ip, render

from . import bp, nav_item
from .guard import console_required, principal

nav_item("admin.contracts", _l("Contracts"), scope.READ, order=15)

ERRORS = {
    "required": _l("Enter a value."),
    "too_long": _l("The name may be 255 characters at most."),
    "name_format": _l("The name may not hold control characters."),
    "user_not_found": _l("No user with this login ID in this contract."),
    "already_admin": _l("This user is already an administrator of the contract."),
    "not_admin": _l("This user is not an administrator of the contract."),
}


def _after(name="after"):
    return fields.whole_number(request.args.get(name), max_digits=11)


@bp.get("/contracts")
@console_required(scope.READ)
def contracts():
    q = (request.args.get("q") or "").strip()[:ct.MAX_NAME]
    found = ct.search(principal(), q, after=_after())
    return render("admin/contracts.html", "admin/_contract_results.html", q=q, found=found)


def _page(ecid, *, status=200, rename_error=None, rename_value=None, grant_error=None,
          grant_value=""):
    try:
        page = ct.page(principal(), ecid, children_after=_after("children_after"))
    except ct.NotFound:
        abort(404)
    return render("admin/contract.html", status=status, info=page, c=page.contract,
                  may_change=scope.may(principal(), scope.CONTRACT_EDIT),
                  rename_error=rename_error,
                  rename_value=page.contract.name if rename_value is None else rename_value,
                  grant_error=grant_error, grant_value=grant_value)


@bp.get("/contracts/<ecid>")
@console_required(scope.READ)
def contract_page(ecid):
    return _page(ecid)


@bp.post("/contracts/<ecid>/name")
@console_required(scope.CONTRACT_EDIT)
def contract_rename(ecid):
    name = request.form.get("name", "")
    try:
        contract = ct.rename(principal(), ecid, name, ip=client_ip())
    except ct.NotFound:
        abort(404)
    except ct.ContractError as exc:
        return _page(ecid, status=422, rename_error=ERRORS[exc.code], rename_value=name)
    flash(_l("The contract's name was saved."), "ok")
    return redirect(url_for("admin.contract_page", ecid=contract.ecid), 303)


@bp.post("/contracts/<ecid>/admins")
@console_required(scope.CONTRACT_EDIT)
def contract_admin_grant(ecid):
    login_id = (request.form.get("login_id") or "").strip()[:255]
    try:
        user = ct.set_admin(principal(), ecid, grant=True, login_id=login_id,
                                   base_url=base_url(), ip=client_ip())
    except ct.NotFound:
        abort(404)
    except ct.ContractError as exc:
        return _page(ecid, status=422, grant_error=ERRORS[exc.code], grant_value=login_id)
    flash(_l("%(login_id)s is now an administrator of this contract; a mail tells them.",
             login_id=user.login_id), "ok")
    return redirect(url_for("admin.contract_page", ecid=ecid.lower()), 303)


@bp.route("/contracts/<ecid>/admins/<int:user_id>/revoke", methods=["GET", "POST"])
@console_required(scope.CONTRACT_EDIT)
def contract_admin_revoke(ecid, user_id):
    contract = scope.get_contract_in_scope(principal(), ecid)
    user = scope.get_user_in_scope(principal(), user_id)
    if contract is None or user is None or user.contract_id != contract.id:
        abort(404)
    if request.method == "POST":
        try:
            ct.set_admin(principal(), ecid, grant=False, user_id=user.id, base_url=base_url(),
                                ip=client_ip())
        except ct.NotFound:
            abort(404)
        except ct.ContractError as exc:
            flash(ERRORS[exc.code], "error")
        else:
            flash(_l("%(login_id)s is no longer an administrator of this contract; a mail tells them.",
                     login_id=user.login_id), "ok")
        return redirect(url_for("admin.contract_page", ecid=contract.ecid), 303)
    return render("admin/contract_revoke.html", c=contract, user=user)

