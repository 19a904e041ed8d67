"""The admin console for contract administrators, helpdesk and operators.

Area modules (``users``, ``progress``, ``audit``, ``settings``...) import ``bp`` and add their
routes; they are imported at the bottom of this file. Every view is guarded by
``guard.console_required(action)``, which uses accounts.scope. An area adds its entry to the
console's navigation with ``nav_item(endpoint, label, action, order)``.
"""
from dataclasses import dataclass

from flask import Blueprint

from accounts import scope
from blueprints.web import Lazy, migration_phase, once_per_request

bp = Blueprint("admin", __name__, url_prefix="/admin")


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object  # a lazy string, translated when shown
    action: str    # shown only to principals who may do this (accounts.scope)
    order: int


NAV: list[NavItem] = []


def nav_item(endpoint: str, label, action: str = scope.READ, order: int = 50) -> None:
    """Add a link to the console's navigation (templates/admin/base.html shows the list)."""
    NAV.append(NavItem(endpoint, label, action, order))
    NAV.sort(key=lambda item: item.order)


@bp.context_processor
def _console_context():
    from accounts.diagnosis import visible_spaces

    from .guard import principal

    who = principal()
    role = scope.role_of(who) if who is not None else None
    items = [i for i in NAV if role and scope.may(who, i.action)]
    return {"console_nav": items, "console_role": role, "console_principal": who if role else None,
            "migration_phase": Lazy(migration_phase) if role else None,
            "visible_spaces": visible_spaces,
            # Read once per request (every template rendered in a console request runs this
            # context processor, mails included: a bulk correction renders thousands), and only
            # by a template that shows it (not the htmx fragments).
            "terms_missing": Lazy(lambda: once_per_request("console.terms_missing",
                                                            lambda: _terms_missing(who), False))}


def _terms_missing(who) -> bool:
    """Warn the operator while no terms version is in force: the first login then asks nobody to
    agree (SPEC 12). Other roles cannot publish, so they are not told."""
    if who is None or not scope.may(who, scope.SETTINGS):
        return False
    from accounts import terms

    return terms.in_force() is None


# Area modules add their routes to bp when imported (they import bp from here: hence the end).
AREA_MODULES = ("auth", "users", "progress", "audit", "settings", "notices", "contracts", "terms", "staff",
                "sessions", "bulk")

from blueprints import import_areas  # noqa: E402

import_areas(__name__, AREA_MODULES)
