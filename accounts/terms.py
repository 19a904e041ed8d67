"""Terms ("カスタマポータル規約"): the current version must be agreed at sign-in (SPEC 5.4)."""
from . import audit
from .db import database
from .models import TermsAcceptance, TermsVersion


def pending_for(user) -> TermsVersion | None:
    """The current terms version if the user has not agreed to it yet (None: nothing to agree)."""
    current = TermsVersion.current()
    if current is None:
        return None
    agreed = TermsAcceptance.select().where(
        (TermsAcceptance.user == user) & (TermsAcceptance.terms == current)).exists()
    return None if agreed else current


def accept(user, terms: TermsVersion, *, ip=None) -> None:
    with database.atomic():
        (TermsAcceptance.insert(user=user, terms=terms)
         .on_conflict_ignore().execute())
        audit.record(user, "terms_accepted", target_user=user, new=str(terms.version), ip=ip)
