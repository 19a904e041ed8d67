"""End users of the two new portals: one set of views, registered once per portal.

Each area module (``auth``, ``tickets``, ...) has ``register(bp)`` that adds its routes to a
portal blueprint; ``g.portal`` / the ``portal`` template variable say which portal is serving.
Signed-in state: ``flask_login.login_user(user)`` only after the whole sign-in (password, second
step, current terms). A contract admin so signed in may use the console at /admin/.
"""
from flask import Blueprint, g, redirect, render_template, url_for

from accounts import portals
from accounts.models import BUSINESS, SDPF
from blueprints import import_areas

AREA_MODULES = ("auth", "steps", "account", "tickets")  # area modules register their routes here


def make_blueprint(portal: str) -> Blueprint:
    bp = Blueprint(portal, __name__, url_prefix=f"/{portal}")

    @bp.before_request
    def _set_portal():
        g.portal = portal

    @bp.context_processor
    def _portal_context():
        return {"portal": portal, "portal_name": portals.display_name(portal)}

    @bp.get("/")
    def landing():
        """Business: the landing page with its sign-in button; SDPF: straight to its sign-in page."""
        if portal == SDPF:
            return redirect(url_for(f"{portal}.signin"), 302)
        return render_template("portal/landing.html")

    for area in import_areas(__name__, AREA_MODULES):
        area.register(bp)  # the same views on both portals' blueprints
    return bp


business_bp = make_blueprint(BUSINESS)
sdpf_bp = make_blueprint(SDPF)
