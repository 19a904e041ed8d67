"""Flask extensions, created once and bound in create_app(), and the rate limits' one rule on what
they count (``failed``)."""
from functools import cached_property

from flask.globals import _cv_app
from flask_babel import Babel, Domain
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_wtf.csrf import CSRFProtect
from jinja2 import pass_context
from markupsafe import Markup


class RequestDomain(Domain):
    """flask-babel's message domain, with the request's catalogue looked up once per request.

    flask-babel finds the catalogue anew for every string (the request's context, the locale, its
    cache key: 20-40 us), and a page translates tens of strings: 0.2 ms of a sign-in page's
    1.2 ms. The catalogue is kept where flask-babel itself keeps it for a request
    (``babel_translations``), which its ``refresh()`` and ``force_locale()`` clear and restore,
    so a changed or forced locale still takes effect at once.
    """

    def get_translations(self):
        # flask-babel's context (flask_babel._get_current_context: a namespace in ``g``), reached
        # without the context-local proxies that cost 4 us a string.
        app_ctx = _cv_app.get(None)
        ctx = getattr(app_ctx.g, "_flask_babel", None) if app_ctx is not None else None
        if ctx is None:
            return super().get_translations()   # flask-babel makes its namespace here
        translations = getattr(ctx, "babel_translations", None)
        if translations is None:
            translations = ctx.babel_translations = super().get_translations()
        return translations


class RequestBabel(Babel):
    @cached_property
    def domain_instance(self):
        return RequestDomain(domain=self.domain)

    def init_app(self, app, *args, **kwargs):
        """As flask-babel, but the templates' ``_()`` asks the domain for the catalogue directly
        (flask-babel first looks for a domain chosen for the request: half the time of a string).
        The application has one domain; nothing here calls ``Domain.as_default()``."""
        super().init_app(app, *args, **kwargs)

        def catalogue():
            return self.domain_instance.get_translations()

        app.jinja_env.install_gettext_callables(
            gettext=lambda s: catalogue().ugettext(s),
            ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
            pgettext=lambda c, s: catalogue().upgettext(c, s),
            npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
            newstyle=True)

        @pass_context
        def gettext_alias(context, string, **variables):
            """``_()`` in templates: Jinja's newstyle gettext (a Markup when autoescaping, always
            %-formatted with the keywords), called directly. Jinja's own ``_`` looks ``gettext``
            up in the context and calls it through two more ``context.call``: 10 us a string,
            tens of strings a page."""
            translated = catalogue().ugettext(string)
            if context.eval_ctx.autoescape:
                translated = Markup(translated)
            return translated % variables

        app.jinja_env.globals["_"] = gettext_alias


babel = RequestBabel()
csrf = CSRFProtect()
login_manager = LoginManager()
mail = Mail()
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="fixed-window")


def failed(response) -> bool:
    """``deduct_when`` of the per-account limits: they count failed attempts (an answer of 400 or
    more), never the owner's successful ones (SPEC 11.4)."""
    return response.status_code >= 400
