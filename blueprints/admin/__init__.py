"""The admin console for contract administrators, helpdesk and operators.

Area modules (``users``, ``progress``, ``audit``, ``settings``...) import ``bp`` and add their
routes; they are imported at the bottom of this file. Every view is guarded by
``guard.console_required(action)``, which uses accounts.scope.
"""
from flask import Blueprint, render_template

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/login")
def login():
    return render_template("admin/login.html")


# Area modules register their routes on bp when imported.
AREA_MODULES = ("settings", "notices")

import importlib  # noqa: E402

for _name in AREA_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
