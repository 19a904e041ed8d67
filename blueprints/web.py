"""Small helpers every blueprint shares: htmx-aware rendering, safe redirects, request facts."""
from urllib.parse import urlsplit

from flask import current_app, make_response, render_template, request


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
