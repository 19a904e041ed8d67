"""The command-line commands (``flask --app app <command>``), registered by ``create_app``.

Each command is a thin shell over a domain function in accounts/ (which owns its rules, output
and exit status); this module adds them to ``app.cli`` and wraps every one but ``db-upgrade`` so
that on a database without the current schema it prints one line and exits 1 (SPEC 12).
A new command goes into ``register_commands`` above the wrapping loop.
"""
import sys

import click
from flask import Flask

from accounts import background
from accounts.db import database
from blueprints.extensions import mail


def csv_import_options(command):
    """The arguments every CSV import takes (migrate-legacy, import-portal-users, import-services):
    the file, ``--dry-run`` and ``--report``."""
    command = click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
                           help="Write the per-row report (CSV, UTF-8) here.")(command)
    command = click.option("--dry-run", is_flag=True, help="Run every rule, write nothing.")(command)
    return click.argument("csv_path", type=click.Path(dir_okay=False))(command)


def register_commands(app: Flask) -> None:
    """Add every command to ``app.cli``, then wrap them all (those that blueprints registered before
    included) so that they refuse to run on a database without the current schema."""

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """Apply pending schema migrations."""
        from accounts.legacy_import import recover_interrupted_run
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

        password = _read_password()
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
    @click.option("--once", is_flag=True, help="Do one round and exit.")
    @click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds.")
    def deliver_mail(once, interval):
        """The worker beside the web workers: answers reset requests (identity checks), delivers
        queued mail over SMTP with retries, removes expired sessions."""
        if not app.config["MAIL_SERVER"]:
            click.echo("MAIL_SERVER is not set: requests are answered, mails stay in the outbox.",
                       err=True)
        background.work(mail if app.config["MAIL_SERVER"] else None, app.config, interval=interval,
                        once=once, say=click.echo, warn=lambda line: click.echo(line, err=True))

    @app.cli.command("migrate-legacy")
    @csv_import_options
    def migrate_legacy(csv_path, dry_run, report_path):
        """Import a legacy Login Portal export into the two portals (SPEC 4)."""
        from accounts.legacy_import import command

        sys.exit(command(csv_path, dry_run=dry_run, report_path=report_path))

    @app.cli.command("import-portal-users")
    @csv_import_options
    @click.option("--portal", type=click.Choice(["business", "sdpf"]), required=True,
                  help="The portal these users already belong to.")
    def import_portal_users(csv_path, portal, dry_run, report_path):
        """Import the users a portal already has (before migrate-legacy: their login IDs stay theirs)."""
        from accounts.portal_users import command

        sys.exit(command(csv_path, portal, dry_run=dry_run, report_path=report_path))

    @app.cli.command("import-services")
    @csv_import_options
    def import_services(csv_path, dry_run, report_path):
        """Import contracts' services (contract_ecid,service,status) shown on the dashboards (SPEC 12)."""
        from accounts.services import command

        sys.exit(command(csv_path, dry_run=dry_run, report_path=report_path))

    @app.cli.command("publish-terms")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--title", required=True, help="The version's title shown to users.")
    @click.option("--at", default=None, help="In force from (ISO 8601; without offset JST). Default: now.")
    def publish_terms(file, title, at):
        """Publish the next terms version from a UTF-8 text or Markdown file (SPEC 12)."""
        from accounts.terms import command

        sys.exit(command(file, title=title, at=at))

    @app.cli.command("staff-list")
    def staff_list():
        """List the staff accounts with their role and state."""
        from accounts.staff import command_list

        sys.exit(command_list())

    def _staff_action(name, action, doc):
        @app.cli.command(name, help=doc)
        @click.argument("login_id")
        def run(login_id):
            from accounts.staff import command_apply

            sys.exit(command_apply(login_id, action))

    _staff_action("staff-disable", "disable", "Disable a staff account (not the last enabled operator).")
    _staff_action("staff-enable", "enable", "Enable a disabled staff account.")
    _staff_action("staff-unlock", "unlock", "Clear a staff account's sign-in lock.")
    _staff_action("staff-reset-totp", "reset_totp",
                  "Reset a staff account's TOTP: it sets up TOTP again at the next sign-in.")

    @app.cli.command("staff-set-password")
    @click.argument("login_id")
    def staff_set_password(login_id):
        """Set a staff account's password; asks twice on a terminal, else reads one line."""
        from accounts.staff import command_set_password

        sys.exit(command_set_password(login_id, _read_password()))

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

    # Last: every command registered above (and by other areas before this line) refuses, in one
    # line, to run on a database without the current schema; only db-upgrade creates it.
    for name, command_obj in app.cli.commands.items():
        if name not in SCHEMA_FREE_COMMANDS:
            command_obj.callback = _schema_first(command_obj.callback)


SCHEMA_FREE_COMMANDS = {"db-upgrade"}


def _schema_first(callback):
    """Run ``callback`` only when every migration is applied; else one line and exit status 1."""
    import functools

    @functools.wraps(callback)
    def wrapped(*args, **kwargs):
        from accounts.schema import SchemaNotReady, check_ready

        try:
            check_ready()
        except SchemaNotReady as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        return callback(*args, **kwargs)

    return wrapped


def _read_password() -> str:
    """A password asked twice on a terminal, or one line of standard input (scripts, CI)."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")
