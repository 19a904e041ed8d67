"""The application factory, configuration from the environment, and the command-line commands."""
import os
import sys
import threading
import time
from pathlib import Path

import click
from dotenv import load_dotenv
from flask import Flask, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from accounts import clock, health, outbox, passwords
from accounts.db import database, init_database
from blueprints import outage
from blueprints.extensions import babel, csrf, limiter, login_manager, mail
from blueprints.web import render, safe_next

ROOT = Path(__file__).resolve().parent
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


def config_from_env() -> dict:
    """Every setting of SPEC section 10, read from the environment (and .env in development)."""
    load_dotenv(ROOT / ".env")
    env = os.environ.get
    return {
        "SECRET_KEY": env("SECRET_KEY") or _dev_secret_key(),
        "DATABASE_URL": env("DATABASE_URL") or f"sqlite:///{ROOT / 'instance' / 'portal.db'}",
        "MAIL_SERVER": env("MAIL_SERVER") or None,
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USERNAME": env("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": _bool(env("MAIL_USE_TLS")),
        "MAIL_USE_SSL": _bool(env("MAIL_USE_SSL")),
        "MAIL_DEFAULT_SENDER": env("MAIL_DEFAULT_SENDER") or "no-reply@portal.example.jp",
        "REDIS_URL": env("REDIS_URL") or None,
        "BASE_URL": env("BASE_URL") or "http://127.0.0.1:5000",
        "FAQ_URL": env("FAQ_URL") or "https://support.example.jp/faq",
        "RESET_TOKEN_MINUTES": _int("RESET_TOKEN_MINUTES", 30),
        "EMAIL_CHANGE_TOKEN_MINUTES": _int("EMAIL_CHANGE_TOKEN_MINUTES", 60 * 24),
        "MAIL_OTP_MINUTES": _int("MAIL_OTP_MINUTES", 10),
        "MAIL_OTP_MAX_TRIES": _int("MAIL_OTP_MAX_TRIES", 5),
        "MAIL_OTP_RESEND_SECONDS": _int("MAIL_OTP_RESEND_SECONDS", 60),
        "TRUSTED_BROWSER_DAYS": _int("TRUSTED_BROWSER_DAYS", 30),
        "LOCKOUT_THRESHOLD": _int("LOCKOUT_THRESHOLD", 10),
        "ARGON2_TIME_COST": _int("ARGON2_TIME_COST", passwords.PRODUCTION_PARAMETERS["time_cost"]),
        "ARGON2_MEMORY_COST": _int("ARGON2_MEMORY_COST", passwords.PRODUCTION_PARAMETERS["memory_cost"]),
        "ARGON2_PARALLELISM": _int("ARGON2_PARALLELISM", passwords.PRODUCTION_PARAMETERS["parallelism"]),
        "MAIL_SUBJECT_RESET_BUSINESS": env("MAIL_SUBJECT_RESET_BUSINESS")
        or "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール",
        "MAIL_SUBJECT_RESET_SDPF": env("MAIL_SUBJECT_RESET_SDPF")
        or "【Smart Data Platform】パスワード再設定",
        "MAIL_SUBJECT_OTP_BUSINESS": env("MAIL_SUBJECT_OTP_BUSINESS")
        or "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード",
        "MAIL_SUBJECT_OTP_SDPF": env("MAIL_SUBJECT_OTP_SDPF")
        or "【Smart Data Platform】メールワンタイムパスワード",
        "DELIVER_MAIL_IN_PROCESS": _bool(env("DELIVER_MAIL_IN_PROCESS")),
        "SESSION_COOKIE_SECURE": _bool(env("SESSION_COOKIE_SECURE")),
        "RATELIMIT_ENABLED": _bool(env("RATELIMIT_ENABLED"), default=True),
        "DB_KEEP_CONNECTION": _bool(env("DB_KEEP_CONNECTION"), default=True),
    }


def _dev_secret_key() -> str:
    """A random key kept in instance/ so that development sessions survive a restart."""
    path = ROOT / "instance" / "secret_key"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        path.write_text(os.urandom(32).hex())
    return path.read_text().strip()


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
    app = Flask(__name__, instance_path=str(ROOT / "instance"))
    app.config.update(config_from_env())
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
    )
    if config:
        app.config.update(config)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    if app.config["REDIS_URL"]:
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    outage.limiter_settings(app.config)

    init_database(app.config["DATABASE_URL"])
    passwords.configure(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST"],
                        app.config["ARGON2_PARALLELISM"])

    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    mail.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"

    _register_hooks(app)
    outage.init_app(app, LANGUAGES)
    _register_blueprints(app)
    _register_commands(app)
    if app.config.get("DELIVER_MAIL_IN_PROCESS") and app.config["MAIL_SERVER"]:
        _start_delivery_thread(app)
    return app


@login_manager.user_loader
def _load_principal(identity: str):
    from accounts.models import Staff, User

    kind, _, raw = identity.partition(":")
    if not raw.isdigit():
        return None
    model = {"u": User, "s": Staff}.get(kind)
    if model is None:
        return None
    principal = model.get_or_none(model.id == int(raw))
    # An account disabled while signed in is signed out at its next request.
    return principal if principal is not None and not principal.disabled else None


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def _open_db():
        health.ensure_connection()   # a kept connection the server closed is replaced

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

    @app.after_request
    def _security_headers(response):
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        if request.endpoint and "static" not in request.endpoint:
            h.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def _template_globals():
        return {
            "current_locale": str(get_locale()),
            "format_jst": clock.format_jst,
            "languages": LANGUAGES,
        }

    @app.errorhandler(CSRFError)
    def _csrf_error(e):
        return render("errors/error.html", status=400, code=400,
                      title=_l("Your form expired"),
                      message=_l("The page was open too long or came from elsewhere. "
                                 "Go back, reload the page and try again."))

    @app.errorhandler(404)
    def _not_found(e):
        return render("errors/error.html", status=404, code=404, title=_l("Page not found"),
                      message=_l("The page does not exist, or you may not see it."))

    @app.errorhandler(403)
    def _forbidden(e):
        return render("errors/error.html", status=403, code=403, title=_l("Not allowed"),
                      message=_l("You may not do this."))

    @app.errorhandler(405)
    def _method(e):
        return render("errors/error.html", status=405, code=405, title=_l("Not allowed"),
                      message=_l("This address does not accept that kind of request."))

    @app.errorhandler(429)
    def _too_many(e):
        return render("errors/error.html", status=429, code=429, title=_l("Too many attempts"),
                      message=_l("Please wait a moment before trying again."))

    @app.errorhandler(500)
    def _server_error(e):
        unavailable = outage.response_for_server_error(e)
        if unavailable is not None:
            return unavailable
        if not database.is_closed():
            try:
                database.rollback()
            except Exception:
                pass
        return render("errors/error.html", status=500, code=500, title=_l("Something went wrong"),
                      message=_l("Nothing was changed. Please try again in a moment."))

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.get("/lang/<code>")
    def set_language(code):
        """The visible language switch: kept in a cookie, and in the account when signed in."""
        target = safe_next(request.args.get("next"), url_for("index"))
        response = redirect(target, 303)
        if code in LANGUAGES:
            response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="Lax",
                                httponly=True, secure=app.config["SESSION_COOKIE_SECURE"])
            if current_user.is_authenticated and getattr(current_user, "language", None) != code:
                who = current_user._get_current_object()  # a User or a Staff row
                model = type(who)
                model.update(language=code).where(model.id == who.id).execute()
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
    if not app.config["MAIL_SERVER"]:
        from blueprints.devmail import bp as devmail_bp

        app.register_blueprint(devmail_bp)


def _start_delivery_thread(app: Flask) -> None:
    """`make run` delivers mail itself; production runs `flask deliver-mail` beside the workers."""

    def loop():
        while True:
            with app.app_context():
                try:
                    database.connect(reuse_if_open=True)
                    outbox.deliver_due(mail, app.config["MAIL_DEFAULT_SENDER"])
                except Exception as exc:  # keep the loop alive; the attempt rows say what failed
                    app.logger.warning("mail delivery round failed: %s", exc)
                    if health.is_unavailable(exc):
                        health.discard_connection()
                finally:
                    if not database.is_closed():
                        database.close()
            time.sleep(2)

    threading.Thread(target=loop, name="mail-delivery", daemon=True).start()


def _register_commands(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade():
        """Apply pending schema migrations."""
        from accounts.migration import recover_interrupted_run
        from accounts.schema import upgrade

        applied = upgrade()
        click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")
        # An import killed during a bulk load leaves its indexes dropped: put them back now.
        with database.connection_context():
            for what in recover_interrupted_run():
                click.echo(f"restored after an interrupted import: {what}")

    @app.cli.command("create-staff")
    @click.argument("login_id")
    @click.option("--role", type=click.Choice(["operator", "helpdesk"]), required=True)
    def create_staff(login_id, role):
        """Create a staff account; asks the password twice on a terminal, else reads one line."""
        from accounts.staff import StaffError, create_staff_account

        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        try:
            staff = create_staff_account(login_id, role, password)
        except StaffError as exc:
            click.echo(f"refused: {exc}", err=True)
            sys.exit(1)
        click.echo(f"created {staff.role} '{staff.login_id}'. Sign in at /admin/login; "
                   "the first sign-in sets up TOTP.")

    @app.cli.command("demo")
    @click.option("--if-empty", is_flag=True, help="Only when the database holds no contract yet.")
    def demo(if_empty):
        """Load demo data (idempotent) and print how to sign in as each kind of user."""
        from accounts.demo import load_demo
        from accounts.models import Contract

        if if_empty and Contract.select().exists():
            click.echo("The database already holds data: demo data not loaded. "
                       "Run 'flask --app app demo' to print the demo sign-ins.")
            return
        for line in load_demo():
            click.echo(line)

    @app.cli.command("deliver-mail")
    @click.option("--once", is_flag=True, help="Deliver what is due and exit.")
    @click.option("--interval", default=2.0, show_default=True, help="Seconds between rounds.")
    def deliver_mail(once, interval):
        """Deliver queued mail over SMTP with retries (run beside the web workers)."""
        if not app.config["MAIL_SERVER"]:
            click.echo("MAIL_SERVER is not set: mails stay in the outbox (see /dev/mail).", err=True)
            sys.exit(1)
        outbox.work(mail, app.config["MAIL_DEFAULT_SENDER"], interval=interval, once=once,
                    say=click.echo, warn=lambda line: click.echo(line, err=True))

    @app.cli.command("migrate-legacy")
    @click.argument("csv_path", type=click.Path(dir_okay=False))
    @click.option("--dry-run", is_flag=True, help="Run every rule, write nothing.")
    @click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
                  help="Write the per-row report (CSV, UTF-8) here.")
    def migrate_legacy(csv_path, dry_run, report_path):
        """Import a legacy Login Portal export into the two portals (SPEC 4)."""
        from accounts.migration import command

        sys.exit(command(csv_path, dry_run=dry_run, report_path=report_path))

    @app.cli.command("migration-period")
    @click.option("--start", default=None, help="ISO 8601; a time without offset is JST.")
    @click.option("--end", default=None, help="ISO 8601; a time without offset is JST.")
    @click.option("--clear", is_flag=True, help="Remove the period (behaves as 'after').")
    def migration_period(start, end, clear):
        """Show or set the migration period (SPEC 6)."""
        from accounts.period import command

        sys.exit(command(start=start, end=end, clear=clear))

    @app.cli.command("check-db")
    @click.option("--quick", is_flag=True, help="Skip SQLite's page check and the search-index check.")
    def check_db(quick):
        """Check the database's consistency (after a restore or a crash): one line per problem."""
        from accounts.consistency import command

        sys.exit(command(quick=quick, echo=click.echo))
