"""Terms ("カスタマポータル規約"): the current version must be agreed at sign-in (SPEC 5.4)."""
from peewee import JOIN

from . import audit
from .clock import utcnow
from .db import database
from .models import TermsAcceptance, TermsVersion


def pending_for(user) -> TermsVersion | None:
    """The current terms version if the user has not agreed to it yet (None: nothing to agree)."""
    # One query: the newest published version, with whether this user agreed to it.
    row = (TermsVersion.select(TermsVersion, TermsAcceptance.id.alias("agreed"))
           .join(TermsAcceptance, JOIN.LEFT_OUTER,
                 on=(TermsAcceptance.terms == TermsVersion.id) & (TermsAcceptance.user == user.id))
           .where(TermsVersion.published_at <= utcnow())
           .order_by(TermsVersion.version.desc()).limit(1).objects().first())
    if row is None or row.agreed is not None:
        return None
    return row


def accept(user, terms: TermsVersion, *, ip=None) -> None:
    with database.atomic():
        (TermsAcceptance.insert(user=user, terms=terms)
         .on_conflict_ignore().execute())
        audit.record(user, "terms_accepted", target_user=user, new=str(terms.version), ip=ip)
