"""Flask's session kept in a database row once it holds somebody (SPEC 11.5).

A visitor who has not started to sign in has nothing worth stealing: their session (the CSRF
token, a flash message) stays in Flask's signed cookie, and opening a page never writes a row
(SPEC 11.2). The moment a session holds a principal — a pending sign-in after the password, a
signed-in user or staff member, a legacy sign-in — it moves into a ``WebSession`` row and the
cookie carries only ``sid.<random key>``. ``session.clear()`` (every sign-in step, sign-out)
gives the session a new key and deletes the old row, so a copied cookie stops working.

The row is normally written when the answer is saved. The end of a sign-in writes it earlier,
inside the sign-in's own transaction (``write_now``): on PostgreSQL its INSERT then goes with
that transaction's COMMIT instead of making a round trip of its own, and a sign-in that fails
leaves no session behind.
"""
import hashlib
import os

from flask import request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from accounts import sessions as store
from accounts.db import deferred
from accounts.models import Staff, User

SID_PREFIX = "sid."
UNAVAILABLE_KEY = "portal.session_database_error"
PENDING_KEYS = {  # session key -> principal kind, for sessions in the middle of a sign-in
    "pending_signin": User.KIND,
    "staff_pending": Staff.KIND,
    "legacy_account_id": "l",
    "legacy_candidates": "l",
}


class ServerSession(SecureCookieSession):
    def __init__(self, initial=None, row=None):
        super().__init__(initial)
        self.row = row          # the WebSession behind this session, if any
        self.rotate = False     # clear() was called: a new key at save time
        self.written = None     # (raw key, data) of the row write_now wrote
        self.ended = None       # the row this request's clear() ended (its id), kept on errors too

    def clear(self):
        super().clear()
        self.rotate = True
        if self.row is not None and self.row.id is not None and self.ended is None:
            self.ended = self.row.id

    @property
    def row_id(self) -> int | None:
        return self.row.id if self.row is not None and not self.rotate else None


def principal_of(data) -> tuple[str | None, bool] | None:
    """(principal, signed_in) when the session must live on the server, else None."""
    if data.get("_user_id"):
        return str(data["_user_id"]), True
    for key, kind in PENDING_KEYS.items():
        value = data.get(key)
        if value:
            if kind == User.KIND:
                return f"{kind}:{value.get('uid')}" if isinstance(value, dict) else None, False
            if isinstance(value, int):
                return f"{kind}:{value}", False
            return None, False
    return None


def write_now() -> None:
    """Write the request's session row now (see the module's text): the last step of a sign-in
    calls it inside its transaction, after ``login_user``. Under ``pipelined()`` the INSERT waits
    for nothing and goes with the COMMIT; the cookie is still set when the answer is saved."""
    from flask import current_app, session

    current_app.session_interface.write_now(current_app, session._get_current_object())


def current_session_id() -> int | None:
    """The caller's own session row (to keep it when ending the account's other sessions)."""
    from flask import session

    return getattr(session, "row_id", None)


class ServerSessionInterface(SecureCookieSessionInterface):
    session_class = ServerSession

    def __init__(self):
        self._signers = {}

    def get_signing_serializer(self, app):
        """Flask's serializer, kept per set of keys: Flask builds one for every request, and
        itsdangerous's constructor tries a dump (0.02 ms, twice per sign-in)."""
        keys = (tuple(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        if not keys[1]:
            return None
        signer = self._signers.get(keys)
        if signer is None:
            signer = self._signers[keys] = super().get_signing_serializer(app)
        return signer

    def _lifetimes(self, app):
        return {"idle_minutes": app.config["SESSION_IDLE_MINUTES"],
                "max_hours": app.config["SESSION_MAX_HOURS"]}

    def open_session(self, app, request):
        value = request.cookies.get(self.get_cookie_name(app)) or ""
        if not value.startswith(SID_PREFIX):
            session = super().open_session(app, request)
            if session is not None and principal_of(session) is not None:
                # Somebody is only ever held by a server-side row: a signed cookie that names a
                # principal (an old cookie from before, or one made with a leaked key) is dropped.
                session = self.session_class()
                session.modified = True
            return session
        from accounts import health

        try:
            health.ensure_connection()   # before the app's before_request: replace a dead connection
            row = store.load(value[len(SID_PREFIX):], **self._lifetimes(app))
        except Exception as exc:
            if not health.is_unavailable(exc):
                raise
            # The database is out: blueprints.outage raises it again before any view, where it
            # becomes the 503 page with one log line (raised from here it was a traceback each).
            request.environ[UNAVAILABLE_KEY] = exc
            return self.session_class()
        if row is None:  # ended or expired: an empty session, and the stale cookie goes
            session = self.session_class()
            session.modified = True
            return session
        try:
            data = self.serializer.loads(row.data) if row.data else {}
        except ValueError:
            data = {}
        return self.session_class(data, row=row)

    def write_now(self, app, session) -> None:
        wanted = principal_of(session)
        if wanted is None or not isinstance(session, ServerSession):
            return
        row = session.row
        if row is not None and not session.rotate:
            return   # the row exists already: saved with the answer, as usual
        if row is not None:
            store.delete(row.id)
        with deferred():
            session.written = self._create_row(app, session, *wanted)

    def _create_row(self, app, session, principal, signed_in) -> tuple[str, str]:
        """A new row for the session (its data, principal, client); returns (raw key, data)."""
        # The CSRF token is seeded so that the pages of a signed-in session never write the row.
        session.setdefault(app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"),
                           hashlib.sha1(os.urandom(64)).hexdigest())
        data = self.serializer.dumps(dict(session))
        raw, session.row = store.create(data, principal=principal, signed_in=signed_in,
                                        ip=request.remote_addr or "",
                                        user_agent=request.user_agent.string or "")
        session.rotate = False
        return raw, data

    def _set_cookie(self, app, response, raw: str) -> None:
        response.set_cookie(
            self.get_cookie_name(app), SID_PREFIX + raw, httponly=True,
            domain=self.get_cookie_domain(app), path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app), samesite=self.get_cookie_samesite(app))
        response.vary.add("Cookie")

    def save_session(self, app, session, response):
        if response.status_code >= 500:
            # A server error (or the database out: blueprints.outage) kept nothing of the request's
            # transaction, and the session gains nothing either: a sign-in whose COMMIT failed
            # after ``login_user`` must not come back as a signed-in session written on its own.
            # It may lose: a session the request ended (a sign-out, a renewed sign-in step) stays
            # ended. An error can sign somebody out, never in.
            return self._end_on_error(app, session, response)
        try:
            self._save(app, session, response)
        except Exception as exc:
            from accounts import health

            if not health.is_unavailable(exc):
                raise
            # The row could not be written (a read-only or full database): the answer becomes
            # the 503 page, since a sign-out or sign-in step that was not kept must not look done.
            from .outage import make_unavailable

            make_unavailable(response, exc)

    def _end_on_error(self, app, session, response) -> None:
        ended = getattr(session, "ended", None)
        if ended is None or response.status_code == 503:
            return   # nothing ended, or the database is out (its row cannot be deleted now)
        try:
            store.delete(ended)
        except Exception:   # noqa: BLE001 - the error page stands; the row expires by itself
            app.logger.warning("session %s could not be ended after a server error", ended)
            return
        response.delete_cookie(self.get_cookie_name(app), domain=self.get_cookie_domain(app),
                               path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
                               samesite=self.get_cookie_samesite(app), httponly=True)

    def _save(self, app, session, response):
        wanted = principal_of(session)
        written = getattr(session, "written", None)
        if written is not None:
            session.written = None
            raw, data = written   # the same data is the same principal (principal_of reads it)
            if not session.rotate and self.serializer.dumps(dict(session)) == data:
                return self._set_cookie(app, response, raw)   # write_now wrote all there is
            # Changed since: its row (whose id a pipelined INSERT does not tell) is saved as usual.
            session.row = store.load(raw, **self._lifetimes(app))
            if session.row is None:   # its transaction was undone: nobody is signed in
                gone = self.session_class()
                gone.modified = True
                return super().save_session(app, gone, response)
            if not session.rotate and wanted is not None:
                self._set_cookie(app, response, raw)
        row = getattr(session, "row", None)
        if row is not None and (session.rotate or wanted is None):
            store.delete(row.id)
            session.row = row = None
            session.modified = True
        if wanted is None:
            return super().save_session(app, session, response)
        principal, signed_in = wanted
        if row is None:
            raw, _data = self._create_row(app, session, principal, signed_in)
            self._set_cookie(app, response, raw)
        elif session.modified:
            store.save(row.id, self.serializer.dumps(dict(session)), principal=principal,
                       signed_in=signed_in)
        else:
            try:
                store.touch(row)
            except Exception as exc:
                from accounts import health

                if not health.is_unavailable(exc):
                    raise
                # Only "last seen" was lost (a read-only database): the page stands.
        if session.accessed:
            response.vary.add("Cookie")
