"""The signed-in principal's own sessions in the console (SPEC 11.5): staff see where they are
signed in and sign out one session or every other one (contract admins do the same from their
portal's profile; the page works for them too)."""
from flask import current_app, flash, redirect, url_for
from flask_babel import lazy_gettext as _l

from accounts import scope, sessions
from blueprints.sessions import current_session_id
from blueprints.web import client_ip, render

from . import bp
from .guard import console_required, principal


@bp.get("/sessions")
@console_required(scope.READ)
def my_sessions():
    who = principal()
    rows = sessions.active(who, idle_minutes=current_app.config["SESSION_IDLE_MINUTES"],
                           max_hours=current_app.config["SESSION_MAX_HOURS"])
    return render("admin/sessions.html", web_sessions=rows, current_session=current_session_id(),
                  browser_label=sessions.browser_label)


@bp.post("/sessions/<int:session_id>/end")
@console_required(scope.READ)
def end_my_session(session_id):
    who = principal()
    if sessions.end_own(who, session_id, current_id=current_session_id(), ip=client_ip()):
        flash(_l("That session is signed out."), "ok")
    return redirect(url_for("admin.my_sessions"), 303)


@bp.post("/sessions/end-others")
@console_required(scope.READ)
def end_my_other_sessions():
    who = principal()
    sessions.end_own_others(who, current_id=current_session_id(), ip=client_ip())
    flash(_l("You were signed out everywhere else."), "ok")
    return redirect(url_for("admin.my_sessions"), 303)
