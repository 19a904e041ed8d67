"""Console staff area (operator only): the staff accounts, and disable, enable, unlock, reset TOTP.

The same functions as the ``staff-*`` commands (accounts.staff), each audited. An operator cannot
disable their own account or the last enabled operator; the page says why instead.
"""
from flask import abort, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import scope
from accounts import staff as st
from accounts.clock import utcnow
from blueprints.web import client_ip, render

from . import bp, nav_item
from .guard import console_required, principal

nav_item("admin.staff_list", _l("Staff"), scope.STAFF, order=65)

LABELS = {
    st.DISABLE: _l("Disable"),
    st.ENABLE: _l("Enable"),
    st.UNLOCK: _l("Unlock"),
    st.RESET_TOTP: _l("Reset TOTP"),
}
EXPLAINED = {
    st.DISABLE: _l("The account can no longer sign in to the console until it is enabled again."),
    st.ENABLE: _l("The account may sign in to the console again."),
    st.UNLOCK: _l("The failed sign-in count is cleared and the account may sign in at once."),
    st.RESET_TOTP: _l("The account's authenticator app no longer works here: at the next sign-in, after "
                      "the password, it sets up TOTP again (for a lost or replaced phone)."),
}
DONE = {
    st.DISABLE: _l("%(login_id)s was disabled."),
    st.ENABLE: _l("%(login_id)s was enabled."),
    st.UNLOCK: _l("%(login_id)s was unlocked."),
    st.RESET_TOTP: _l("%(login_id)s sets up TOTP again at the next sign-in."),
}
REFUSED = {
    "self": _l("You cannot disable your own account."),
    "last_operator": _l("This is the last enabled operator: enable or create another operator first."),
}
STATUS = {
    "active": _l("active"),
    "disabled": _l("disabled"),
    "locked": _l("locked"),
    "totp_pending": _l("TOTP set-up at next sign-in"),
}


@bp.get("/staff")
@console_required(scope.STAFF)
def staff_list():
    now = utcnow()
    rows = [(s, st.status(s, now)) for s in st.listing()]
    return render("admin/staff.html", rows=rows, me=principal(), labels=LABELS, status_labels=STATUS)


@bp.route("/staff/<int:staff_id>/<action>", methods=["GET", "POST"])
@console_required(scope.STAFF)
def staff_action(staff_id, action):
    target = st.get(staff_id)
    if target is None or action not in st.ACTIONS:
        abort(404)
    if request.method == "POST":
        try:
            fresh = st.apply(principal(), target.id, action, ip=client_ip())
        except st.StaffNotFound:
            abort(404)
        except st.StaffError as exc:
            flash(REFUSED.get(exc.code, str(exc)), "error")
        else:
            flash(DONE[action] % {"login_id": fresh.login_id}, "ok")
        return redirect(url_for("admin.staff_list"), 303)
    return render("admin/staff_confirm.html", target=target, action=action, label=LABELS[action],
                  explained=EXPLAINED[action])
