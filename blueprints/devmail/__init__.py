"""The local mailbox: every mail the app wrote, for development without an SMTP server."""
from flask import Blueprint, abort, render_template, request

from accounts import fields
from accounts.models import Mail

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")

PAGE_SIZE = 50


@bp.get("/")
def inbox():
    to = (request.args.get("to") or "").strip()
    before = fields.whole_number(request.args.get("before"))
    q = Mail.select().order_by(Mail.id.desc())
    if to:
        q = q.where(Mail.recipient == to)
    if before:
        q = q.where(Mail.id < before)
    mails = list(q.limit(PAGE_SIZE + 1))
    more = len(mails) > PAGE_SIZE
    mails = mails[:PAGE_SIZE]
    return render_template("devmail/inbox.html", mails=mails, to=to,
                           next_before=mails[-1].id if more else None)


@bp.get("/<int:mail_id>")
def show(mail_id):
    m = Mail.get_or_none(Mail.id == mail_id)
    if m is None:
        abort(404)
    return render_template("devmail/show.html", mail=m)
