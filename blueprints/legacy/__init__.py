"""The legacy Login Portal during and after the migration period."""
from flask import Blueprint, render_template

bp = Blueprint("legacy", __name__, url_prefix="/legacy")


@bp.get("/")
def index():
    return render_template("legacy/index.html")
