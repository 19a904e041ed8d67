"""docs/operations.md, "First set-up of a real deployment", followed step by step from an empty
database with the real commands, until a migrated user's first login reaches the terms page."""
import datetime
import re

import bcrypt
import pytest

from accounts.clock import JST
from accounts.db import init_database
from accounts.models import ORIGIN_LEGACY, ORIGIN_NATIVE, Contract, Staff, User
from tests.accounts.test_migration_command import read_report, write_csv
from tests.conftest import TEST_DATABASE_URL
from tests.web.portal_journey import Portal, last_mail, otp_from_mail

P, C = "ecid1000000001", "ecid2000000001"
PASSWORD = "Abcdef1!x"


@pytest.fixture
def fresh_app(make_app, empty_database_url):
    yield make_app(DATABASE_URL=empty_database_url, RESET_ANSWER_SECONDS=0.01)
    init_database(TEST_DATABASE_URL)   # the next test's fixtures use the suite's database again


def _jst(days):
    return (datetime.datetime.now(JST) + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def test_the_documented_first_set_up_from_an_empty_database_to_a_first_login(fresh_app, tmp_path):
    cli = fresh_app.test_cli_runner()

    def run(*args, input=None):
        result = cli.invoke(args=[str(a) for a in args], input=input)
        assert result.exit_code == 0, (args, result.output)
        return result.output

    # Before step 1 every command refuses in one line.
    refused = cli.invoke(args=["import-portal-users", str(tmp_path / "x.csv"), "--portal", "business"])
    assert refused.exit_code == 1 and "run flask --app app db-upgrade first" in refused.output

    # 1. Schema.
    assert "applied: " in run("db-upgrade")

    # 2. Users who already exist in the new portals: a dry run first, then the real import.
    business = write_csv(tmp_path / "business-users.csv", [
        ["sample@ntt.com", "native@example.jp", "本田 一郎", "0312345678", P, "", "親契約 サンプル", "1",
         bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()]])
    assert "dry run, nothing written" in run("import-portal-users", business, "--portal", "business",
                                             "--dry-run")
    assert "1 imported" in run("import-portal-users", business, "--portal", "business",
                               "--report", tmp_path / "import-business.csv")

    # 3. The legacy export: one login ID is the imported user's (another case), so it gets the ECID.
    legacy = write_csv(tmp_path / "legacy-export.csv", [
        ["Sample@NTT.com", "legacy@example.jp", "山田\u3000太郎", "03-1234-5678", P, "", "親契約 サンプル",
         "0", ""],
        ["kodomo", "kodomo@example.jp", "", "", C, P, "子契約 みどり", "1", ""]])
    run("migrate-legacy", legacy, "--dry-run", "--report", tmp_path / "dry.csv")
    assert "2 migrated" in run("migrate-legacy", legacy, "--report", tmp_path / "migrate.csv")
    assert (tmp_path / "dry.csv").read_bytes() == (tmp_path / "migrate.csv").read_bytes()
    report = read_report(tmp_path / "migrate.csv")
    assert report[0]["login_id"] == f"Sample@NTT.com_{P}"
    assert "2 skipped" in run("migrate-legacy", legacy)       # re-running is safe

    # 4. Services shown on the dashboards (the status is the file's text).
    services = write_csv(tmp_path / "services.csv", [[P, "Smart Data Platform", "お申し込み済み"]],
                         header=["contract_ecid", "service", "status"])
    assert "1 imported" in run("import-services", services)
    assert "1 skipped" in run("import-services", services)    # re-running is safe

    # 5. Terms.
    terms = tmp_path / "terms.md"
    terms.write_text("# カスタマポータル規約\n\n第1条 本規約は…\n", encoding="utf-8")
    run("publish-terms", terms, "--title", "カスタマポータル規約 第1版")

    # 6. Staff.
    assert "created operator 'ops-yamada'" in run("create-staff", "ops-yamada", "--role", "operator",
                                                  input="a-long-enough-password-1\n")
    # 7. Migration period: begun yesterday (JST).
    run("migration-period", "--start", _jst(-1), "--end", _jst(90))

    assert Staff.select().count() == 1
    native = User.get(User.login_id == "sample@ntt.com")
    migrated = User.get(User.login_id == f"Sample@NTT.com_{P}")
    assert native.origin == ORIGIN_NATIVE and migrated.origin == ORIGIN_LEGACY
    assert Contract.by_ecid(P).users_total == 2 and Contract.by_ecid(P).users_first_login_done == 1

    # 8. The web: the imported user signs in with the portal's password, no reset ...
    client = fresh_app.test_client()
    r = Portal(client, "business").sign_in("sample@ntt.com", PASSWORD)
    assert r.status_code == 303 and r.headers["Location"].endswith("/business/signin/method")

    # ... and the migrated user's first login: identity check, reset mail, password, Mail OTP, terms.
    p = Portal(fresh_app.test_client(), "business")
    p.request_reset(login_id=f"sample@ntt.com_{P}", email="legacy@example.jp", name="山田\u3000太郎",
                    phone="0312345678")
    p.set_password(p.reset_link(migrated), PASSWORD)
    r = p.sign_in(f"Sample@NTT.com_{P}", PASSWORD)
    assert r.headers["Location"].endswith("/business/signin/method")
    p.post("/signin/method", {"method": "mail"})
    r = p.post("/signin/mail-otp/setup", {"code": otp_from_mail(last_mail("otp", "legacy@example.jp"))})
    assert r.headers["Location"].endswith("/business/signin/terms")
    html = p.follow(r).get_data(as_text=True)
    assert "カスタマポータル規約 第1版" in html and re.search(r"同意", html)
    r = p.post("/signin/terms", {"version": "1"})
    html = p.follow(r).get_data(as_text=True)
    assert "Smart Data Platform" in html and "お申し込み済み" in html   # the dashboard, step 4's service

    # And the counters the console shows agree with the users (docs/faults.md's check).
    assert run("check-db", "--quick").startswith("ok: ")
