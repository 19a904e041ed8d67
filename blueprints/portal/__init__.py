"""End users of the two new portals: one set of views, registered once per portal."""
from flask import Blueprint, render_template

from accounts.models import BUSINESS, SDPF


def make_blueprint(portal: str) -> Blueprint:
    bp = Blueprint(portal, __name__, url_prefix=f"/{portal}")

    @bp.context_processor
    def _portal_context():
        return {"portal": portal}

    @bp.get("/")
    def landing():
        return render_template("portal/landing.html")

    return bp


business_bp = make_blueprint(BUSINESS)
sdpf_bp = make_blueprint(SDPF)
