"""Error pages in the user's language, from one table: status -> title and message."""
from flask import Flask, Response
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, SecurityError

from accounts.db import database

from .web import render

PAGES = {
    400: (_l("Bad request"), _l("The request could not be understood. Go back and try again.")),
    403: (_l("Not allowed"), _l("You may not do this.")),
    404: (_l("Page not found"), _l("The page does not exist, or you may not see it.")),
    405: (_l("Not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("File too large"), _l("The file is too large.")),
    429: (_l("Too many attempts"), _l("Please wait a moment before trying again.")),
    500: (_l("Something went wrong"), _l("Nothing was changed. Please try again in a moment.")),
}
CSRF_PAGE = (_l("Your form expired"),
             _l("The page was open too long or came from elsewhere. Go back, reload the page and try again."))


def error_page(code: int, title=None, message=None):
    default_title, default_message = PAGES.get(code, PAGES[500])
    return render("errors/error.html", status=code, code=code, title=title or default_title,
                  message=message or default_message)


def _rollback():
    if not database.is_closed() and database.in_transaction():
        try:
            database.rollback()
        except Exception:
            pass


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(SecurityError)
    def _untrusted_host(e):
        """A Host that is neither BASE_URL's nor in TRUSTED_HOSTS (SPEC 11.3): no page can be built
        for it (every link would carry that host), so the answer is a short plain 400."""
        return Response("400 Bad Request: this host name is not served here.\n", status=400,
                        mimetype="text/plain")

    @app.errorhandler(CSRFError)
    def _csrf_error(e):
        return error_page(400, *CSRF_PAGE)

    def _http_error(e: HTTPException):
        response = error_page(e.code)
        if e.code == 405 and getattr(e, "valid_methods", None):
            response.headers["Allow"] = ", ".join(e.valid_methods)
        return response

    for code in PAGES:
        if code != 500:
            app.register_error_handler(code, _http_error)

    @app.errorhandler(500)
    def _server_error(e):
        from .outage import response_for_server_error

        unavailable = response_for_server_error(e)   # the database out, e.g. while opening the session
        if unavailable is not None:
            return unavailable
        _rollback()
        return error_page(500)
