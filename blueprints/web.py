"""Small helpers every blueprint shares: htmx-aware rendering, safe redirects, request facts
(client address, ``BASE_URL``), the footer's facts, and the messages of field rules that several
areas' forms show."""
from urllib.parse import urlsplit

from flask import current_app, make_response, render_template, request
from flask_babel import lazy_gettext as _l

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


def is_htmx() -> bool:
    """A fragment is wanted for htmx requests, but not for history restoration (full page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request")


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render the whole page, or only its partial when htmx asked; always Vary: HX-Request."""
    template = fragment if (fragment and is_htmx()) else page
    response = make_response(render_template(template, **context), status)
    response.headers.add("Vary", "HX-Request")
    return response


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


def site_context() -> dict:
    """The footer's facts: the operator's name (``SITE_OPERATOR_NAME``) and whether the demo data is
    loaded (recorded in the database by ``flask demo``, accounts.site). Read once per request."""
    from flask import has_request_context

    cache = request.environ if has_request_context() else {}
    if "portal.demo_loaded" not in cache:
        from accounts import site

        try:
            cache["portal.demo_loaded"] = site.demo_loaded()
        except Exception:  # no schema yet, or the database is down: the error page still renders
            cache["portal.demo_loaded"] = False
    return {"site_operator_name": current_app.config.get("SITE_OPERATOR_NAME") or "",
            "demo_data_loaded": cache["portal.demo_loaded"]}
