"""The application factory and its configuration from the environment (SPEC 10, 11.7).

The command-line commands live in blueprints/commands.py (``register_commands``), the error pages
in blueprints/errorpages.py; this module wires them, the blueprints and the extensions together.
"""
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv
from flask import Flask, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from accounts import background, clock, health, passwords
from accounts.db import database, first_row, init_database
from blueprints import outage
from blueprints.commands import register_commands
from blueprints.errorpages import register_error_pages
from blueprints.extensions import babel, csrf, limiter, login_manager, mail
from blueprints.sessions import ServerSessionInterface
from blueprints.web import RowIdConverter, safe_next

ROOT = Path(__file__).resolve().parent


def instance_dir() -> Path:
    """Where the development secret key and the default SQLite file live: ``INSTANCE_PATH`` if set,
    else instance/ of the checkout; an installed copy (no pyproject.toml beside app.py) never
    writes into site-packages, it uses <venv>/var/portal-instance (Flask's own convention)."""
    if os.environ.get("INSTANCE_PATH"):
        return Path(os.environ["INSTANCE_PATH"])
    if (ROOT / "pyproject.toml").exists():
        return ROOT / "instance"
    return Path(sys.prefix) / "var" / "portal-instance"

LANGUAGES = ("ja", "en")
# One message catalog per area (translations/<area>/<lang>/LC_MESSAGES/messages.po), merged at
# run time: a new area is a new folder, so areas worked on side by side never edit one file.
TRANSLATION_AREAS = tuple(sorted(p.name for p in (ROOT / "translations").iterdir() if p.is_dir()))


def _bool(value: str | None, default=False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


DEVELOPMENT = "development"
PRODUCTION = "production"

# Settings that have a default (SPEC 10). SECRET_KEY and BASE_URL have none in production.
DEFAULTS = {
    "APP_ENV": PRODUCTION,
    "DATABASE_URL": None,        # None: the SQLite file portal.db in the instance folder
    "MAIL_SERVER": None,
    "MAIL_PORT": 25,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_DEFAULT_SENDER": "no-reply@portal.example.jp",
    "REDIS_URL": None,
    "FAQ_URL": "https://support.example.jp/faq",
    # SDPF users ask their contract's administrator and their partner; a FAQ only if set.
    "FAQ_URL_SDPF": None,
    "SITE_OPERATOR_NAME": "NTT Communications",
    "TRUSTED_HOSTS": "",        # comma-separated host names accepted besides BASE_URL's
    "TRUSTED_PROXIES": 0,       # reverse proxies in front (X-Forwarded-For is read through them)
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    "RESET_TOKEN_MINUTES": 30,
    "EMAIL_CHANGE_TOKEN_MINUTES": 60 * 24,
    "MAIL_OTP_MINUTES": 10,
    "MAIL_OTP_MAX_TRIES": 5,
    "MAIL_OTP_RESEND_SECONDS": 60,
    "TRUSTED_BROWSER_DAYS": 30,
    "LOCKOUT_THRESHOLD": 10,
    "ARGON2_TIME_COST": passwords.PRODUCTION_PARAMETERS["time_cost"],
    "ARGON2_MEMORY_COST": passwords.PRODUCTION_PARAMETERS["memory_cost"],
    "ARGON2_PARALLELISM": passwords.PRODUCTION_PARAMETERS["parallelism"],
    "MAIL_SUBJECT_RESET_BUSINESS": "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール",
    "MAIL_SUBJECT_RESET_SDPF": "【Smart Data Platform】パスワード再設定",
    "MAIL_SUBJECT_OTP_BUSINESS": "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード",
    "MAIL_SUBJECT_OTP_SDPF": "【Smart Data Platform】メールワンタイムパスワード",
    "DELIVER_MAIL_IN_PROCESS": False,
    "RATELIMIT_ENABLED": True,
    "DB_KEEP_CONNECTION": True,
}
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"
REQUIRED_IN_PRODUCTION = {
    "SECRET_KEY": "a long random value, e.g. python -c 'import secrets; print(secrets.token_hex(32))'",
    "BASE_URL": "the address users reach the portals at, e.g. https://portal.example.jp",
}


def config_from_env() -> dict:
    """The settings of SPEC 10 and 11 that the environment (and .env in development) gives.

    Only what is set is returned; ``DEFAULTS`` fill the rest. In development a missing
    SECRET_KEY is generated once into instance/secret_key and BASE_URL defaults to the local
    server; in production both must be set (``check_config``).
    """
    load_dotenv(ROOT / ".env")
    env = os.environ.get
    found = {}
    for key, default in DEFAULTS.items():
        raw = env(key)
        if raw is None or raw == "":
            continue
        if isinstance(default, bool):
            found[key] = _bool(raw, default)
        elif isinstance(default, int):
            found[key] = _int(key, default)
        else:
            found[key] = raw
    for key in ("SECRET_KEY", "BASE_URL", "SESSION_COOKIE_SECURE"):
        if env(key):
            found[key] = _bool(env(key)) if key == "SESSION_COOKIE_SECURE" else env(key)
    if found.get("APP_ENV", PRODUCTION) == DEVELOPMENT:
        found.setdefault("SECRET_KEY", _dev_secret_key())
        found.setdefault("BASE_URL", DEVELOPMENT_BASE_URL)
    return found


def _dev_secret_key() -> str:
    """A random key kept in instance/ so that development sessions survive a restart; the file is
    created readable by its owner only (0600)."""
    path = instance_dir() / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(os.urandom(32).hex())
    return path.read_text().strip()


def check_config(config: dict) -> None:
    """Refuse to start a production app without its secrets, with one line naming the variable
    (SystemExit prints it and exits with status 1, no traceback)."""
    if config["APP_ENV"] not in (DEVELOPMENT, PRODUCTION):
        raise SystemExit(f"APP_ENV must be 'production' or 'development', not {config['APP_ENV']!r}.")
    if config["APP_ENV"] == PRODUCTION:
        for key, what in REQUIRED_IN_PRODUCTION.items():
            if not config.get(key):
                raise SystemExit(f"{key} is not set: production needs {what} (or set APP_ENV=development).")
    base = urlsplit(config.get("BASE_URL") or "")
    if config.get("BASE_URL") and (base.scheme not in ("http", "https") or not base.hostname):
        raise SystemExit(f"BASE_URL must be an absolute http(s) address, not {config['BASE_URL']!r}.")


def _derived_settings(config: dict) -> dict:
    """Settings that follow from others: trusted hosts, cookie security, rate-limit storage."""
    development = config["APP_ENV"] == DEVELOPMENT
    hosts = [urlsplit(config["BASE_URL"]).hostname] if config.get("BASE_URL") else []
    extra = config.get("TRUSTED_HOSTS") or ""
    hosts += [h.strip() for h in (extra.split(",") if isinstance(extra, str) else extra) if h.strip()]
    if development:  # the local server answers on every loopback name
        hosts += ["localhost", "127.0.0.1", "::1"]
    secure = config.get("SESSION_COOKIE_SECURE")
    if secure is None:  # production: Secure unless SESSION_COOKIE_SECURE=0 says otherwise
        secure = not development
    return {
        "TRUSTED_HOSTS": sorted(set(hosts)) if hosts else None,
        "SESSION_COOKIE_SECURE": bool(secure),
        "RATELIMIT_STORAGE_URI": config.get("RATELIMIT_STORAGE_URI")
        or (config["REDIS_URL"] if config.get("REDIS_URL") else "memory://"),
        "DEV_MAILBOX": development and not config.get("MAIL_SERVER"),
        "SEND_HSTS": (config.get("BASE_URL") or "").startswith("https://"),
    }


def select_locale() -> str:
    """The visible switch (cookie) first, then the account's language, then Accept-Language."""
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    if current_user and current_user.is_authenticated and getattr(current_user, "language", None) \
            in LANGUAGES:
        return current_user.language
    return request.accept_languages.best_match(LANGUAGES) or "ja"


def create_app(config: dict | None = None) -> Flask:
    """Build one app. Without ``config`` the settings come from the environment (and .env);
    with it, only from ``DEFAULTS`` and ``config`` (tests and benchmarks), nothing else is read."""
    settings = dict(DEFAULTS)
    settings.update(config_from_env() if config is None else config)
    check_config(settings)
    settings.update(_derived_settings(settings))
    if not settings.get("DATABASE_URL"):
        instance_dir().mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not the folder
        settings["DATABASE_URL"] = f"sqlite:///{instance_dir() / 'portal.db'}"

    app = Flask(__name__, instance_path=str(instance_dir()))
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="ja",
        BABEL_DEFAULT_TIMEZONE="Asia/Tokyo",
        BABEL_TRANSLATION_DIRECTORIES=";".join(
            str(ROOT / "translations" / area) for area in TRANSLATION_AREAS),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        # The outbox decides what is sent; Flask-Mail never silently drops a mail (even in tests).
        MAIL_SUPPRESS_SEND=False,
        # Redis down: rate limits fall back to the process's memory instead of failing requests.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
    )
    app.config.update(settings)
    outage.limiter_settings(app.config)   # Redis: short timeouts, memory while it is out
    if app.config["TRUSTED_PROXIES"]:
        n = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    init_database(app.config["DATABASE_URL"])
    app.extensions["password_hasher"] = passwords.Hasher(
        time_cost=app.config["ARGON2_TIME_COST"], memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"])

    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    mail.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # sessions are server-side rows (blueprints.sessions)
    app.session_interface = ServerSessionInterface()

    _register_hooks(app)
    register_error_pages(app)
    outage.init_app(app, LANGUAGES)   # the database out: a 503 page, never a traceback
    _register_blueprints(app)
    register_commands(app)  # last: it wraps every command registered so far (schema first)
    if app.config.get("DELIVER_MAIL_IN_PROCESS"):
        _start_background_thread(app)
    return app


@login_manager.user_loader
def _load_principal(identity: str):
    from accounts import fields
    from accounts.models import principal_model

    kind, _, raw = identity.partition(":")
    model = principal_model(kind)
    if model is None or fields.whole_number(raw) is None:
        return None
    principal = first_row(model, '"id" = ?', int(raw))
    # An account disabled while signed in is signed out at its next request.
    return principal if principal is not None and not principal.disabled else None


def _holds_nul() -> bool:
    """Whether the request carries a NUL character where the application reads text: form, query,
    the address's own values, the browser's name (kept with the session)."""
    values = [v for _, v in request.args.items(multi=True)]
    values += [v for _, v in request.form.items(multi=True)]
    values += [v for v in (request.view_args or {}).values() if isinstance(v, str)]
    values.append(request.headers.get("User-Agent", ""))
    return any("\x00" in v for v in values)


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"),
)


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def _open_db():
        health.ensure_connection()   # a kept connection the server closed is replaced

    @app.before_request
    def _refuse_nul():
        """No field of the product takes a NUL character and PostgreSQL cannot store one (a query
        holding it fails): such a request is refused with 400 before any view sees it."""
        if _holds_nul():
            abort(400)

    @app.teardown_request
    def _end_db_request(exc):
        """Keep a worker's connection for its next request (a connect costs 1.5-3 ms on SQLite
        with its pragmas), but only on a process's main thread, which serves request after
        request (gunicorn's sync workers); a thread-per-request server closes it. Never carry
        an open transaction over."""
        if not health.end_request():   # rolled back; a connection that failed is discarded
            return
        if not (app.config["DB_KEEP_CONNECTION"]
                and threading.current_thread() is threading.main_thread()):
            database.close()

    security_headers = [(name.lower(), name, value) for name, value in SECURITY_HEADERS]
    hsts = ("strict-transport-security", "Strict-Transport-Security", "max-age=31536000; includeSubDomains")

    @app.after_request
    def _security_headers(response):
        """Every answer's security headers, unless its view set its own. One pass over the headers
        the answer has (werkzeug's setdefault raises and catches an exception per missing header)."""
        h = response.headers
        present = {name.lower() for name, _ in h}
        if request.endpoint and "static" not in request.endpoint and "cache-control" not in present:
            h.add("Cache-Control", "no-store")
        wanted = security_headers + [hsts] if app.config["SEND_HSTS"] else security_headers
        h.extend([(name, value) for key, name, value in wanted if key not in present])
        return response

    @app.context_processor
    def _template_globals():
        from blueprints.web import site_context, unlazy

        return {
            "current_locale": str(get_locale()),
            "format_jst": lambda dt, *args, **kwargs: clock.format_jst(unlazy(dt), *args, **kwargs),
            "languages": LANGUAGES,
            **site_context(),
        }

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.route("/lang/<code>", methods=["GET", "POST"])
    def set_language(code):
        """The visible language switch: kept in a cookie; a POST (the switch's button) also saves
        it in the account when signed in. A GET (an old link) only sets the cookie."""
        target = safe_next(request.values.get("next"), url_for("index"))
        response = redirect(target, 303)
        if code in LANGUAGES:
            response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax",
                                httponly=True, secure=app.config["SESSION_COOKIE_SECURE"])
            if request.method == "POST" and current_user.is_authenticated \
                    and getattr(current_user, "language", None) != code:
                from accounts.profile import save_language

                save_language(current_user._get_current_object(), code)  # a User or a Staff row
        return response

    @app.get("/healthz")
    def healthz():
        database.execute_sql("SELECT 1")
        return {"ok": True}


def _register_blueprints(app: Flask) -> None:
    from blueprints.admin import bp as admin_bp
    from blueprints.legacy import bp as legacy_bp
    from blueprints.portal import business_bp, sdpf_bp

    app.register_blueprint(business_bp)
    app.register_blueprint(sdpf_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(legacy_bp)
    if app.config["DEV_MAILBOX"]:  # development without SMTP only: it shows every reset link
        from blueprints.devmail import bp as devmail_bp

        app.register_blueprint(devmail_bp)


def _start_background_thread(app: Flask) -> None:
    """`make run` does the worker's rounds itself (identity checks, mail when SMTP is set, session
    clean-up); production runs `flask deliver-mail` beside the web workers."""

    def loop():
        while True:
            with app.app_context():
                try:
                    database.connect(reuse_if_open=True)
                    background.run_round(mail if app.config["MAIL_SERVER"] else None, app.config)
                except Exception as exc:  # keep the loop alive; the attempt rows say what failed
                    app.logger.warning("background round failed: %s", exc)
                    if health.is_unavailable(exc):
                        health.discard_connection()
                finally:
                    if not database.is_closed():
                        database.close()
            time.sleep(1)

    threading.Thread(target=loop, name="background-worker", daemon=True).start()
