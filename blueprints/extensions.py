"""Flask extensions, created once and bound in create_app(), and the rate limits' one rule on what
they count (``failed``)."""
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_wtf.csrf import CSRFProtect

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
mail = Mail()
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="fixed-window")


def failed(response) -> bool:
    """``deduct_when`` of the per-account limits: they count failed attempts (an answer of 400 or
    more), never the owner's successful ones (SPEC 11.4)."""
    return response.status_code >= 400
