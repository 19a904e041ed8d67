"""`flask import-portal-users` end to end (SPEC 12): the users a portal already has, then a later
`migrate-legacy` that must not take their login IDs."""
import bcrypt
import pytest
from werkzeug.security import generate_password_hash

from accounts import portal_users
from accounts.db import database
from accounts.legacy_import import import_run
from accounts.models import BUSINESS, ORIGIN_LEGACY, ORIGIN_NATIVE, SDPF, Contract, LegacyAccount, User
from accounts.passwords import hasher
from tests.accounts.test_migration_command import HEADER, read_report, write_csv
from tests.helpers import gen_contract, gen_user

P = "ecid1000000001"   # a parent contract (Business Portal)
P2 = "ecid1000000002"  # a parent contract named only by the SDPF file's parent_ecid
C = "ecid2000000001"   # a child contract (SDPF Portal)
PASSWORD = "Abcdef1!x"

HASHES = {
    "argon2": lambda pw: hasher().hash(pw),
    "bcrypt": lambda pw: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode(),
    "werkzeug-pbkdf2": lambda pw: generate_password_hash(pw, method="pbkdf2:sha256:1000"),
    "werkzeug-scrypt": lambda pw: generate_password_hash(pw, method="scrypt:1024:8:1"),
}


def business_rows():
    return [
        ["Sample@NTT.com", "sample@ntt.com", "山田\u3000太郎", "03-1234-5678", P, "", "親契約 サンプル", "1",
         HASHES["bcrypt"](PASSWORD)],
        ["nopass", "nopass@example.jp", "佐藤 次郎", "0312345678", P, "", "親契約 サンプル", "0", ""],
        ["argon", "argon@example.jp", "鈴木 三郎", "0312345679", P.upper(), "", "親契約 サンプル", "no",
         HASHES["argon2"](PASSWORD)],
    ]


@pytest.fixture(params=["per-batch lookups", "bulk load"])
def mode(request, monkeypatch):
    """Every end-to-end test runs both ways: indexes kept (small files) and suspended (big files)."""
    if request.param == "bulk load":
        monkeypatch.setattr(import_run, "SUSPEND_INDEX_MIN_ROWS", 1)
    return request.param


def import_users(runner, csv_path, portal="business", *extra, report=None):
    args = ["import-portal-users", str(csv_path), "--portal", portal, *extra]
    if report:
        args += ["--report", str(report)]
    return runner.invoke(args=args)


def snapshot():
    users = sorted((u.portal, u.login_id, u.email, u.name, u.phone, u.is_admin, u.contract.ecid, u.origin,
                    u.password_hash, u.first_login_done_at is not None) for u in User.select())
    contracts = sorted((c.ecid, c.parent.ecid if c.parent else None, c.name, c.users_total,
                        c.users_first_login_done) for c in Contract.select())
    return users, contracts


def test_business_users_are_imported_with_their_password_and_first_login_done(db, runner, tmp_path, mode):
    path = write_csv(tmp_path / "users.csv", business_rows())
    result = import_users(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0, result.output
    assert "3 imported, 0 skipped, 0 rejected" in result.output
    assert "with a password (first login done): 2" in result.output

    parent = Contract.by_ecid(P)
    assert parent.parent_id is None and parent.name == "親契約 サンプル"
    assert (parent.users_total, parent.users_first_login_done) == (3, 2)
    yamada = User.by_login_id(BUSINESS, "sample@ntt.com")
    assert yamada.login_id == "Sample@NTT.com" and yamada.name == "山田\u3000太郎"
    assert yamada.origin == ORIGIN_NATIVE and yamada.is_admin and yamada.contract_id == parent.id
    assert yamada.password_hash.startswith("$2b$04$") and yamada.first_login_done_at is not None
    assert yamada.phone == "0312345678"                   # the Business Portal's phone rule
    assert yamada.legacy_login_id is None and yamada.migrated_at is None
    nopass = User.by_login_id(BUSINESS, "nopass")
    assert nopass.password_hash is None and nopass.first_login_done_at is None
    assert LegacyAccount.select().count() == 0
    assert read_report(tmp_path / "report.csv") == [
        {"line": "2", "status": "imported", "legacy_login_id": "Sample@NTT.com", "login_id": "Sample@NTT.com",
         "legacy_phone": "03-1234-5678", "phone": "0312345678", "reason": "phone: changed by the phone rule"},
        {"line": "3", "status": "imported", "legacy_login_id": "nopass", "login_id": "nopass",
         "legacy_phone": "0312345678", "phone": "0312345678", "reason": ""},
        {"line": "4", "status": "imported", "legacy_login_id": "argon", "login_id": "argon",
         "legacy_phone": "0312345679", "phone": "0312345679", "reason": ""},
    ]


def test_sdpf_users_belong_to_child_contracts_whose_missing_parent_a_legacy_export_names_later(
        db, runner, tmp_path, mode):
    rows = [["kodomo", "k@example.jp", "", "090-1111-2222", C, P2, "子契約 みどり", "0",
             HASHES["werkzeug-scrypt"](PASSWORD)]]
    result = import_users(runner, write_csv(tmp_path / "sdpf.csv", rows), "sdpf")
    assert result.exit_code == 0, result.output
    assert "1 imported" in result.output and "contracts created: 2" in result.output
    child, parent = Contract.by_ecid(C), Contract.by_ecid(P2)
    assert child.parent_id == parent.id and parent.name == P2   # named by its ECID for now
    kodomo = User.by_login_id(SDPF, "kodomo")
    assert kodomo.contract_id == child.id and kodomo.phone == "090-1111-2222"   # SDPF: as given
    assert (child.users_total, child.users_first_login_done) == (1, 1)

    legacy = [["someone", "s@example.jp", "誰か", "", P2, "", "親契約 あおば", "0", ""]]
    assert runner.invoke(args=["migrate-legacy", write_csv(tmp_path / "legacy.csv", legacy)]).exit_code == 0
    assert Contract.by_ecid(P2).name == "親契約 あおば"


def test_rows_of_the_other_portal_and_bad_hashes_are_rejected_with_line_and_field(db, runner, tmp_path, mode):
    rows = business_rows() + [
        ["child", "c@example.jp", "子", "", C, P, "子契約", "0", ""],
        ["badhash", "b@example.jp", "誤", "", P, "", "親契約 サンプル", "0", "$2b$12$short"],
        ["md5", "m@example.jp", "誤", "", P, "", "親契約 サンプル", "0", "md5$abc$def"],
        ["SAMPLE@ntt.com", "again@example.jp", "再", "", P, "", "親契約 サンプル", "0", ""],
    ]
    path = write_csv(tmp_path / "users.csv", rows)
    result = import_users(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0
    report = {int(r["line"]): r for r in read_report(tmp_path / "report.csv")}
    assert [report[n]["status"] for n in range(2, 9)] == ["imported"] * 3 + ["rejected"] * 4
    assert report[5]["reason"] == (f"parent_ecid: {C} is a child contract (of {P}): its users belong "
                                   "to the SDPF Portal, not to the Business Portal (--portal business)")
    assert report[6]["reason"] == "password_hash: not an argon2, bcrypt or Werkzeug password hash"
    assert report[7]["reason"] == "password_hash: not an argon2, bcrypt or Werkzeug password hash"
    assert report[8]["reason"] == ("login_id: duplicate of line 2 (login IDs are unique in a portal, "
                                   "ignoring case)")
    assert f"{path}:6: password_hash: " in result.output
    assert Contract.by_ecid(C) is None and User.select().count() == 3

    sdpf = import_users(runner, path, "sdpf", report=tmp_path / "sdpf.csv")
    assert sdpf.exit_code == 0 and "1 imported, 0 skipped, 6 rejected" in sdpf.output
    assert read_report(tmp_path / "sdpf.csv")[0]["reason"] == (
        f"parent_ecid: empty: {P} is a parent contract: its users belong to the Business Portal, "
        "not to the SDPF Portal (--portal sdpf)")


def test_a_login_id_the_portal_holds_for_someone_else_is_rejected(db, runner, tmp_path, mode):
    gen_user(gen_contract(ecid="ecid9000000001"), login_id="sample@ntt.com")           # another contract
    gen_user(gen_contract(ecid=P), login_id="nopass", legacy=True)                      # a migrated user
    gen_user(gen_contract(parent=gen_contract(ecid="ecid9000000002")), login_id="argon")  # other portal
    path = write_csv(tmp_path / "users.csv", business_rows())
    result = import_users(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0
    report = read_report(tmp_path / "report.csv")
    assert [r["status"] for r in report] == ["rejected", "rejected", "imported"]
    assert report[0]["reason"] == ("login_id: 'sample@ntt.com' exists in the business portal: "
                                   "a user of contract ecid9000000001")
    assert report[1]["reason"] == ("login_id: 'nopass' exists in the business portal: a user migrated "
                                   "from the legacy portal (run import-portal-users before migrate-legacy)")


def test_a_second_run_skips_every_imported_row(db, runner, tmp_path, mode):
    path = write_csv(tmp_path / "users.csv", business_rows())
    assert import_users(runner, path).exit_code == 0
    before = snapshot()
    User.update(phone="0398765432").where(User.login_id == "nopass").execute()   # a console correction
    result = import_users(runner, path, report=tmp_path / "second.csv")
    assert result.exit_code == 0 and "0 imported, 3 skipped, 0 rejected" in result.output
    assert "s search index" not in result.output
    report = read_report(tmp_path / "second.csv")
    assert [r["status"] for r in report] == ["skipped"] * 3
    assert report[1]["phone"] == "0398765432" and report[0]["login_id"] == "Sample@NTT.com"
    User.update(phone="0312345678").where(User.login_id == "nopass").execute()
    assert snapshot() == before


def _back_to_one_native_user():
    User.delete().where(User.login_id != "argon").execute()
    Contract.delete().where(Contract.parent.is_null(False)).execute()
    Contract.delete().where(Contract.ecid != "ecid9000000001").execute()


def test_dry_run_writes_nothing_and_reports_what_the_real_run_does(db, runner, tmp_path, mode):
    gen_user(gen_contract(ecid="ecid9000000001"), login_id="argon")
    rows = business_rows() + [["nopass", "x@example.jp", "重複", "", P, "", "親契約 サンプル", "0", ""],
                              ["kodomo", "k@example.jp", "", "", C, P2, "子契約", "0", ""]]
    path = write_csv(tmp_path / "users.csv", rows)
    for portal in ("business", "sdpf"):
        dry = import_users(runner, path, portal, "--dry-run", report=tmp_path / f"dry-{portal}.csv")
        assert dry.exit_code == 0 and "dry run, nothing written" in dry.output
        assert User.select().count() == 1 and Contract.select().count() == 1
        assert import_users(runner, path, portal, report=tmp_path / f"real-{portal}.csv").exit_code == 0
        assert (tmp_path / f"dry-{portal}.csv").read_bytes() == (tmp_path / f"real-{portal}.csv").read_bytes()
        dry_summary = dry.output.strip().splitlines()[-3:-1]
        _back_to_one_native_user()
        real = import_users(runner, path, portal)
        assert real.output.strip().splitlines()[-3:-1] == [s.replace("dry run, nothing written: ", "")
                                                           for s in dry_summary]
        _back_to_one_native_user()


def test_a_run_killed_mid_way_and_run_again_equals_one_clean_run(db, runner, tmp_path, monkeypatch, mode):
    rows = [[f"user{i}@example.jp", f"user{i}@example.jp", f"利用者\u3000{i}", f"03-0000-{i:04d}", P, "",
             "契約", "0", HASHES["argon2"](PASSWORD) if i % 2 else ""] for i in range(12)]
    rows[9] = list(rows[4])                  # a duplicate
    path = write_csv(tmp_path / "users.csv", rows)
    monkeypatch.setattr(import_run, "BATCH_SIZE", 3)
    assert import_users(runner, path).exit_code == 0
    clean = snapshot()

    database.execute_sql('DELETE FROM "user"')
    database.execute_sql("UPDATE contract SET users_total = 0, users_first_login_done = 0")
    real_write, calls = portal_users.PortalWriter.write, []

    def dying_write(self, new):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real_write(self, new)

    monkeypatch.setattr(portal_users.PortalWriter, "write", dying_write)
    result = import_users(runner, path)
    assert result.exit_code == 1 and "run the same command again to resume" in result.output
    assert User.select().count() == 6                                     # whole batches only
    assert Contract.by_ecid(P).users_total == 6 and Contract.by_ecid(P).users_first_login_done == 3
    monkeypatch.setattr(portal_users.PortalWriter, "write", real_write)
    result = import_users(runner, path, report=tmp_path / "resumed.csv")
    assert result.exit_code == 0
    assert snapshot() == clean
    statuses = [r["status"] for r in read_report(tmp_path / "resumed.csv")]
    assert statuses[:6] == ["skipped"] * 6 and statuses[9] == "rejected" and "imported" in statuses[6:]


@pytest.mark.parametrize("portal,ecid,parent", [("business", P, ""), ("sdpf", C, P)])
def test_a_later_migrate_legacy_suffixes_a_login_id_an_imported_user_holds(db, runner, tmp_path, mode,
                                                                          portal, ecid, parent):
    imported = [["Sample@NTT.com", "s@example.jp", "山田 太郎", "", ecid, parent, "契約", "0", ""]]
    legacy = [["sample@ntt.com", "legacy@example.jp", "山田 太郎", "", P, "", "親契約", "0", ""],
              ["kodomo", "k@example.jp", "子", "", C, P, "子契約", "0", ""],
              ["SAMPLE@ntt.COM", "legacy2@example.jp", "山田 花子", "", C, P, "子契約", "0", ""]]
    assert import_users(runner, write_csv(tmp_path / "p.csv", imported), portal).exit_code == 0
    result = runner.invoke(args=["migrate-legacy", write_csv(tmp_path / "l.csv", legacy),
                                 "--report", str(tmp_path / "report.csv")])
    assert result.exit_code == 0, result.output
    report = read_report(tmp_path / "report.csv")
    taken = 0 if portal == "business" else 2   # the row of the portal that holds the ID
    free = 2 - taken
    assert report[taken]["login_id"] == f"{legacy[taken][0]}_{legacy[taken][4]}"
    assert report[taken]["reason"].startswith(f"login_id: exists in the {portal} portal, changed to")
    assert report[free]["login_id"] == legacy[free][0]     # the other portal is another namespace
    assert User.by_login_id(portal, "sample@ntt.com").origin == ORIGIN_NATIVE
    migrated = User.by_login_id(portal, f"sample@ntt.com_{legacy[taken][4]}")
    assert migrated.origin == ORIGIN_LEGACY and migrated.legacy_login_id == legacy[taken][0]


def test_unreadable_files_stop_before_writing_with_exit_1(db, runner, tmp_path):
    bad_encoding = tmp_path / "latin.csv"
    write_csv(bad_encoding, business_rows())
    with open(bad_encoding, "ab") as fh:
        fh.write(b"bad,\x85\x20,x,,ecid1000000001,,x,0,\r\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    missing_column = write_csv(tmp_path / "nophone.csv", [r[:3] + r[4:] for r in business_rows()],
                               header=[h for h in HEADER if h != "phone"])
    cases = [(bad_encoding, "not UTF-8 nor CP932"), (empty, "the file is empty"),
             (missing_column, "missing column(s): phone"), (tmp_path / "nope.csv", "no such file")]
    for path, message in cases:
        result = import_users(runner, path, report=tmp_path / "report.csv")
        assert result.exit_code == 1, (path, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert Contract.select().count() == 0 and User.select().count() == 0
        assert not (tmp_path / "report.csv").exists()


@pytest.mark.parametrize("args", [["import-portal-users"], ["import-portal-users", "x.csv"],
                                  ["import-portal-users", "x.csv", "--portal", "legacy"],
                                  ["import-portal-users", "--portal", "business"],
                                  ["import-portal-users", "x.csv", "--portal", "business", "--bogus"]])
def test_usage_errors_exit_2(db, runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 2 and "Traceback" not in result.output
