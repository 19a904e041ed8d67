"""The operator's commands (SPEC 12): publish-terms, staff-*, and every command on a database without
schema. Exit status 0 done, 1 refused (bad file, unknown account, rule), 2 wrong usage; always one
clear line, never a traceback."""
import datetime

import pytest
import time_machine

from accounts import terms
from accounts.clock import utcnow
from accounts.models import AuditEntry, Staff, TermsVersion
from accounts.passwords import hasher
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.usefixtures("db")


def _staff(login_id, role="operator", **fields):
    return Staff.create(login_id=login_id, login_id_key=login_id.lower(), role=role,
                        password_hash=hasher().hash("a-long-staff-password"), **fields)


def _one_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- publish-terms ------------------------------------------------------------------------------

def test_publish_terms_publishes_the_next_version_now_from_a_utf8_markdown_file(runner, tmp_path):
    f = tmp_path / "terms.md"
    f.write_text("# カスタマポータル規約\n\n第1条 本規約は…\n- 項目\n", encoding="utf-8")
    result = runner.invoke(args=["publish-terms", str(f), "--title", "第1版"])
    assert result.exit_code == 0, result.output
    assert "published terms version 1" in _one_line(result)
    v1 = TermsVersion.get()
    assert v1.version == 1 and v1.title == "第1版" and v1.body.startswith("# カスタマポータル規約")
    assert v1.published_at <= utcnow() and terms.in_force() == v1
    f.write_bytes("\ufeff第2版の本文".encode())  # with a BOM
    assert runner.invoke(args=["publish-terms", str(f), "--title", "第2版"]).exit_code == 0
    assert terms.latest().version == 2 and terms.latest().body == "第2版の本文"
    assert AuditEntry.select().where(AuditEntry.action == "terms_published").count() == 2


def test_publish_terms_at_a_later_jst_time_is_scheduled(runner, tmp_path):
    f = tmp_path / "terms.txt"
    f.write_text("本文", encoding="utf-8")
    result = runner.invoke(args=["publish-terms", str(f), "--title", "予約", "--at", "2030-01-01T09:00"])
    assert result.exit_code == 0 and "scheduled" in result.output
    assert TermsVersion.get().published_at == datetime.datetime(2030, 1, 1, 0, 0)  # 09:00 JST
    assert terms.in_force() is None
    with time_machine.travel(datetime.datetime(2030, 1, 1, 0, 1, tzinfo=datetime.UTC)):
        assert terms.in_force().title == "予約"


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"\n\n  \n", "empty"),
    ("規約".encode("cp932"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b"text\x00with NUL", "control characters"),
])
def test_publish_terms_refuses_a_bad_file_with_one_line_and_status_1(runner, tmp_path, content, reason):
    f = tmp_path / "terms.txt"
    f.write_bytes(content)
    result = runner.invoke(args=["publish-terms", str(f), "--title", "t"])
    assert result.exit_code == 1
    assert reason in _one_line(result) and str(f) in result.output
    assert TermsVersion.select().count() == 0


def test_publish_terms_refuses_a_missing_file_with_status_1(runner, tmp_path):
    result = runner.invoke(args=["publish-terms", str(tmp_path / "nope.txt"), "--title", "t"])
    assert result.exit_code == 1 and "cannot read" in _one_line(result)


@pytest.mark.parametrize("args", [
    ["publish-terms"],
    ["publish-terms", "FILE"],  # no --title
    ["publish-terms", "FILE", "--title", " "],
    ["publish-terms", "FILE", "--title", "t", "--at", "next tuesday"],
    ["publish-terms", "FILE", "--title", "t", "--bogus"],
    ["publish-terms", "DIR", "--title", "t"],
])
def test_publish_terms_usage_errors_exit_2(runner, tmp_path, args):
    f = tmp_path / "terms.txt"
    f.write_text("本文", encoding="utf-8")
    args = [str(f) if a == "FILE" else str(tmp_path) if a == "DIR" else a for a in args]
    result = runner.invoke(args=args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert TermsVersion.select().count() == 0


def test_publish_terms_refuses_a_time_before_the_previous_version(runner, tmp_path):
    f = tmp_path / "terms.txt"
    f.write_text("本文", encoding="utf-8")
    first = runner.invoke(args=["publish-terms", str(f), "--title", "1", "--at", "2030-01-01T00:00"])
    assert first.exit_code == 0
    result = runner.invoke(args=["publish-terms", str(f), "--title", "2", "--at", "2029-01-01T00:00"])
    assert result.exit_code == 2 and "version 1" in _one_line(result)
    assert TermsVersion.select().count() == 1


PERIOD = ["migration-period", "--start", "2030-12-01T00:00", "--end", "2031-03-31T23:59"]


def test_migration_period_start_warns_when_no_terms_will_be_in_force(runner, tmp_path):
    result = runner.invoke(args=PERIOD)
    assert result.exit_code == 0
    assert "users will not be asked to agree" in result.output
    f = tmp_path / "terms.txt"
    f.write_text("本文", encoding="utf-8")
    runner.invoke(args=["publish-terms", str(f), "--title", "1"])
    result = runner.invoke(args=PERIOD)
    assert result.exit_code == 0 and "will not be asked" not in result.output


# --- staff-* ------------------------------------------------------------------------------------

def test_staff_list_shows_every_account_with_its_state(runner):
    _staff("op-one")
    _staff("hd-one", "helpdesk", disabled=True)
    _staff("hd-two", "helpdesk", totp_confirmed_at=utcnow(),
           locked_until=utcnow() + datetime.timedelta(minutes=5))
    result = runner.invoke(args=["staff-list"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "operator" in lines["op-one"] and "totp_pending" in lines["op-one"]
    assert "disabled" in lines["hd-one"] and "locked" in lines["hd-two"]


def test_staff_list_on_an_empty_table_says_how_to_create_one(runner):
    result = runner.invoke(args=["staff-list"])
    assert result.exit_code == 0 and "create-staff" in _one_line(result)


def test_staff_disable_enable_and_reset_totp_are_applied_and_audited(runner):
    _staff("op-one")
    hd = _staff("hd-one", "helpdesk", totp_secret="X" * 32, totp_confirmed_at=utcnow(), totp_last_step=5)
    assert runner.invoke(args=["staff-disable", "HD-ONE"]).exit_code == 0  # login IDs ignore case
    assert Staff.get_by_id(hd.id).disabled
    assert runner.invoke(args=["staff-enable", "hd-one"]).exit_code == 0
    assert not Staff.get_by_id(hd.id).disabled
    result = runner.invoke(args=["staff-reset-totp", "hd-one"])
    assert result.exit_code == 0 and "sets up TOTP again" in _one_line(result)
    fresh = Staff.get_by_id(hd.id)
    assert fresh.totp_secret is None and fresh.totp_confirmed_at is None
    actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert actions == ["staff_disabled", "staff_enabled", "staff_totp_reset"]
    assert all(e.actor_label == "cli" and e.detail == "staff:hd-one" for e in AuditEntry.select())


def test_staff_unlock_clears_the_lock(runner):
    hd = _staff("hd-one", "helpdesk", failed_logins=7, locked_until=utcnow() + datetime.timedelta(hours=1))
    assert runner.invoke(args=["staff-unlock", "hd-one"]).exit_code == 0
    fresh = Staff.get_by_id(hd.id)
    assert fresh.locked_until is None and fresh.failed_logins == 0


def test_the_last_enabled_operator_cannot_be_disabled(runner):
    op = _staff("op-one")
    _staff("op-two", disabled=True)
    result = runner.invoke(args=["staff-disable", "op-one"])
    assert result.exit_code == 1 and "last enabled operator" in _one_line(result)
    assert not Staff.get_by_id(op.id).disabled
    runner.invoke(args=["staff-enable", "op-two"])
    assert runner.invoke(args=["staff-disable", "op-one"]).exit_code == 0


def test_staff_set_password_reads_one_line_from_stdin_and_clears_a_lock(runner):
    hd = _staff("hd-one", "helpdesk", locked_until=utcnow() + datetime.timedelta(hours=1))
    result = runner.invoke(args=["staff-set-password", "hd-one"], input="a-brand-new-password\n")
    assert result.exit_code == 0 and "new password set" in _one_line(result)
    fresh = Staff.get_by_id(hd.id)
    assert hasher().verify(fresh.password_hash, "a-brand-new-password")[0]
    assert fresh.locked_until is None
    assert AuditEntry.get().action == "staff_password_set"
    assert "a-brand-new-password" not in (AuditEntry.get().new_value or "")


def test_staff_set_password_refuses_a_short_password(runner):
    hd = _staff("hd-one", "helpdesk")
    before = hd.password_hash
    result = runner.invoke(args=["staff-set-password", "hd-one"], input="short\n")
    assert result.exit_code == 1 and "password must be" in _one_line(result)
    assert Staff.get_by_id(hd.id).password_hash == before


@pytest.mark.parametrize("command", ["staff-disable", "staff-enable", "staff-unlock", "staff-reset-totp",
                                     "staff-set-password"])
def test_staff_commands_on_an_unknown_login_id_exit_1(runner, command):
    result = runner.invoke(args=[command, "nobody"], input="a-long-enough-password\n")
    assert result.exit_code == 1 and "no staff account 'nobody'" in _one_line(result)


@pytest.mark.parametrize("args", [["staff-disable"], ["staff-enable", "a", "b"], ["staff-list", "x"],
                                  ["staff-reset-totp", "--force", "a"], ["staff-set-password"]])
def test_staff_command_usage_errors_exit_2(runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- a database without schema --------------------------------------------------------------------

COMMAND_ARGS = {
    "create-staff": ["someone", "--role", "operator"],
    "demo": [],
    "deliver-mail": ["--once"],
    "import-services": ["{file}"],
    "import-portal-users": ["{file}", "--portal", "business"],
    "migrate-legacy": ["{file}"],
    "migration-period": [],
    "publish-terms": ["{file}", "--title", "t"],
    "staff-list": [],
    "staff-disable": ["someone"],
    "staff-enable": ["someone"],
    "staff-unlock": ["someone"],
    "staff-reset-totp": ["someone"],
    "staff-set-password": ["someone"],
}


@pytest.fixture
def empty_database_app(make_app, tmp_path):
    from accounts.db import init_database

    yield make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}", MAIL_SERVER="127.0.0.1")
    init_database(TEST_DATABASE_URL)  # the next test's fixtures use the suite's database again


def test_every_command_but_db_upgrade_refuses_a_database_without_schema_in_one_line(empty_database_app,
                                                                                   tmp_path):
    app = empty_database_app
    runner = app.test_cli_runner()
    f = tmp_path / "input.csv"
    f.write_text("login_id\n", encoding="utf-8")
    for name, command in app.cli.commands.items():
        if name == "db-upgrade":
            continue
        # Every command is wrapped (a command added by another area too) ...
        assert hasattr(command.callback, "__wrapped__"), f"{name} is not checked for the schema"
        if name not in COMMAND_ARGS:
            continue
        # ... and the known ones are run for real.
        args = [a.format(file=f) for a in COMMAND_ARGS[name]]
        result = runner.invoke(args=[name, *args], input="a-long-enough-password\n")
        assert result.exit_code == 1, (name, result.output)
        line = _one_line(result)
        assert "run flask --app app db-upgrade first" in line, (name, line)
        assert "no schema" in line


def test_db_upgrade_then_the_command_works(empty_database_app):
    runner = empty_database_app.test_cli_runner()
    assert runner.invoke(args=["staff-list"]).exit_code == 1
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    assert runner.invoke(args=["staff-list"]).exit_code == 0
