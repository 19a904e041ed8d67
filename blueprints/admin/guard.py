"""The console's one access check: who is signed in and what accounts.scope lets them do."""
import functools

from flask import abort, redirect, request, url_for
from flask_login import current_user

from accounts import scope


def principal():
    """The signed-in staff account or contract admin (None for anyone else)."""
    if not current_user.is_authenticated:
        return None
    return current_user._get_current_object()


def console_required(action: str = scope.READ):
    """Signed-out visitors go to /admin/login; signed-in users without the right get 404."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            who = principal()
            if who is None:
                return redirect(url_for("admin.login", next=request.full_path))
            if scope.role_of(who) is None or not scope.may(who, action):
                abort(404)
            return view(*args, **kwargs)

        wrapped.console_action = action  # read by the route-walk test: no unguarded view
        return wrapped

    return decorator
