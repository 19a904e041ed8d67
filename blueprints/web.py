"""Small helpers every blueprint shares: htmx-aware rendering, safe redirects, request facts
(client address, ``BASE_URL``), the footer's facts, and the messages of field rules that several
areas' forms show."""
import secrets
from collections import OrderedDict
from urllib.parse import urlsplit

from flask import current_app, g, has_request_context, make_response, render_template, request, session
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import escape
from werkzeug.routing import IntegerConverter

from accounts import fields

# The login-ID rule's message, for every form that takes a login ID (console, legacy pop-up): its
# numbers and symbols come from the rule itself (accounts.fields.login_id_problem).
LOGIN_ID_FORMAT_ERROR = _l("A login ID is %(min)d-%(max)d half-width characters: letters, digits and "
                           "%(symbols)s", min=fields.MIN_LOGIN_ID, max=fields.MAX_LOGIN_ID,
                           symbols=" ".join(fields.LOGIN_ID_SYMBOLS))
# The messages of accounts.console.validate's codes that the legacy pop-up shares with the console.
FIELD_RULE_ERRORS = {
    "login_id_format": LOGIN_ID_FORMAT_ERROR,
    "name_format": _l("The name may not hold control characters or be longer than 255 characters."),
    "name_edge_space": _l("The name may not start or end with a space."),
    "phone_format": _l("Enter 4-32 digits (hyphens and spaces are removed)."),
}


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: an id that a 64-bit column can hold; a longer number does not
    match the route (404, like a missing row) instead of overflowing the database (SQLite: 500)."""

    def __init__(self, map, fixed_digits=0, min=None, max=2**63 - 1, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)


def is_htmx() -> bool:
    """A fragment is wanted for htmx requests, but not for history restoration (full page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request")


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render the whole page, or only its partial when htmx asked; always Vary: HX-Request."""
    template = fragment if (fragment and is_htmx()) else page
    return _page_response(render_template(template, **context), status)


def _page_response(html: str, status: int = 200):
    response = make_response(html, status)
    response.headers.add("Vary", "HX-Request")
    return response


# Pages kept rendered for visitors who are not signed in (render_public), in each app's
# ``extensions["public_pages"]``, newest last.
PUBLIC_PAGES_KEPT = 256   # a few KB each; an address with another query string is another page
_TOKEN_MARK = f"csrf-{secrets.token_hex(16)}"   # stands for the visitor's CSRF token while kept


def render_public(page: str, **context):
    """``render`` for a page that every visitor who is not signed in sees the same, but for the CSRF
    token of its forms: the sign-in page, which every sign-in opens. Its HTML is kept (rendered
    once per address, language, period, phase and demo flag, and ``context``) and each answer puts
    the visitor's own token in; 0.45 ms of a worker's CPU less per sign-in page.

    Kept only for a visitor whose session holds nothing but the CSRF token (nobody signed in or
    signing in, no message to show: nothing of one visitor can reach another) and while templates
    are not reloaded (development). Whatever the template shows must come from the key: the
    address, the language, ``site_facts``, the phase, the configuration and ``context`` (``g.portal``
    is in the address, a HEAD's page differs from a GET's). A template that reads anything else of
    the request must not use this.
    """
    app = current_app._get_current_object()
    field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if app.jinja_env.auto_reload or not set(session.keys()) <= {field} \
            or not current_user.is_anonymous:
        return render(page, **context)
    kept = app.extensions.setdefault("public_pages", OrderedDict())
    key = (page, request.method, request.full_path, is_htmx(), str(get_locale()), site_facts(),
           migration_phase(), repr(sorted(context.items())))
    html = kept.get(key)
    if html is None:
        setattr(g, field, _TOKEN_MARK)   # what the template's csrf_token() gives while rendering
        try:
            html = render_template(page, **context)
        finally:
            g.pop(field, None)
        kept[key] = html
        while len(kept) > PUBLIC_PAGES_KEPT:
            kept.popitem(last=False)
    return _page_response(html.replace(_TOKEN_MARK, generate_csrf()))


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


def client_ip() -> str:
    return request.remote_addr or ""


def base_url() -> str:
    """The application's address for links in mails: ``BASE_URL`` only, never the request's Host
    header (a forged Host would otherwise put an attacker's address into a reset mail)."""
    return current_app.config["BASE_URL"].rstrip("/")


class Lazy:
    """A template value read from the database only if a template uses it.

    Context processors run for every template, the htmx fragments included, which show no
    footer, phase badge or terms warning: a console search's results would otherwise pay three
    more statements per key press for values it never shows. The value is computed at its first
    use (truth test, comparison, output) and kept.
    """

    __slots__ = ("_compute", "_value", "_done")

    def __init__(self, compute):
        self._compute, self._value, self._done = compute, None, False

    def get(self):
        if not self._done:
            self._value, self._done = self._compute(), True
        return self._value

    def __bool__(self):
        return bool(self.get())

    def __eq__(self, other):
        return self.get() == unlazy(other)

    def __hash__(self):
        return hash(self.get())

    def __str__(self):
        return str(self.get())

    def __html__(self):
        return escape(self.get())


def unlazy(value):
    """The value itself, whether or not it is a Lazy."""
    return value.get() if isinstance(value, Lazy) else value


def once_per_request(key: str, compute, fallback=None):
    """A value of the database read at most once per request (``fallback`` when it cannot be read:
    no schema yet, or the database is down, and the error page that says so must still render)."""
    cache = request.environ if has_request_context() else {}
    if key not in cache:
        try:
            cache[key] = compute()
        except Exception:
            cache[key] = fallback
    return cache[key]


def site_facts():
    """The migration period and the demo flag (accounts.site.facts), read at most once per request
    and in one statement."""
    from accounts import site

    return once_per_request("portal.site_facts", site.facts, site.Facts(None, False))


def current_period():
    """The migration period (accounts.period.current), read at most once per request."""
    return site_facts().period


def migration_phase() -> str:
    """before / during / after, from the request's period."""
    from accounts import period

    current = current_period()
    return period.phase(period=current) if current else period.AFTER


def site_context() -> dict:
    """The footer's facts: the operator's name (``SITE_OPERATOR_NAME``) and whether the demo data is
    loaded (recorded in the database by ``flask demo``, accounts.site), read only if shown."""
    return {"site_operator_name": current_app.config.get("SITE_OPERATOR_NAME") or "",
            "demo_data_loaded": Lazy(lambda: site_facts().demo_loaded)}


def phase_context() -> dict:
    """``migration_phase`` and the period's dates for every template, read only if shown."""
    return {
        "migration_phase": Lazy(migration_phase),
        "migration_start": Lazy(lambda: current_period().start_at if current_period() else None),
        "migration_end": Lazy(lambda: current_period().end_at if current_period() else None),
    }
