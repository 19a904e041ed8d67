"""The admin console for contract administrators, helpdesk and operators."""
from flask import Blueprint, render_template

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/login")
def login():
    return render_template("admin/login.html")
