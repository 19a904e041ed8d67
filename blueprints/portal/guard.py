"""The portal's access check: a user of this portal who finished the whole sign-in."""
import functools

from flask import g, redirect, request, url_for
from flask_login import current_user

from accounts.models import User


def portal_user():
    """The signed-in user of the portal serving this request, or None."""
    if not current_user.is_authenticated or not isinstance(current_user._get_current_object(), User):
        return None
    if current_user.portal != g.get("portal"):
        return None
    return current_user._get_current_object()


def portal_login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if portal_user() is None:
            return redirect(url_for(f"{g.portal}.signin", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped
