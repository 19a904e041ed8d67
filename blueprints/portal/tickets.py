"""Support tickets of the signed-in portal user, with the migration period's rule on where to file.

During the period a Business Portal user created in the legacy Login Portal files tickets there
only (guide p. 2); this side then explains that and links to the Login Portal's ticket page.
"""
from flask import g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import tickets
from blueprints.web import client_ip

from .guard import portal_login_required, portal_user

ERRORS = {
    "subject": {"required": _l("Enter a subject."),
                "too_long": _l("The subject is too long (200 characters at most).")},
    "body": {"required": _l("Describe your request."),
             "too_long": _l("The text is too long (5,000 characters at most).")},
}


def register(bp):
    @bp.route("/tickets", methods=["GET", "POST"], endpoint="tickets")
    @portal_login_required
    def ticket_list():
        user = portal_user()
        place = tickets.place_for(user)
        context = {"items": tickets.for_user(user=user), "place": place, "subject": "", "body": "",
                   "subject_error": None, "body_error": None, "filed": request.args.get("filed") == "1",
                   "form_action": url_for(f"{g.portal}.tickets")}
        if place != g.portal:
            # Refused here: say where to go instead (status 403 for a POST, the page for a GET).
            return render_template("portal/tickets.html", refused=True, **context), \
                (403 if request.method == "POST" else 200)
        if request.method == "POST":
            subject, body = request.form.get("subject", ""), request.form.get("body", "")
            try:
                tickets.file(filed_from=g.portal, subject=subject, body=body, user=user,
                             ip=client_ip())
            except tickets.TicketError as exc:
                context.update(subject=subject, body=body,
                               subject_error=ERRORS["subject"].get(exc.errors.get("subject")),
                               body_error=ERRORS["body"].get(exc.errors.get("body")))
                return render_template("portal/tickets.html", refused=False, **context), 400
            return redirect(url_for(f"{g.portal}.tickets", filed=1), 303)
        return render_template("portal/tickets.html", refused=False, **context)
