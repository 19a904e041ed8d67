"""`flask migrate-legacy` end to end on a real database (SPEC 4): files in, users and report out."""
import csv

import pytest

from accounts import legacy_import
from accounts.db import database, is_postgres
from accounts.legacy_import import import_run
from accounts.models import BUSINESS, ORIGIN_LEGACY, SDPF, Contract, LegacyAccount, User
from tests.helpers import gen_contract, gen_user

HEADER = ["login_id", "email", "name", "phone", "contract_ecid", "parent_ecid", "contract_name", "is_admin",
          "password_hash"]
P = "ecid1000000001"  # a parent contract
C = "ecid2000000001"  # its child

ROWS = [
    # a child row before its parent's first row
    ["kodomo@example.jp", "Kodomo@Example.jp", "子供 花子", "090-1111-2222", C, P, "子契約 みどり商事",
     "0", ""],
    ["sample@ntt.com", "sample@ntt.com", "山田\u3000太郎", "03-1234-ｱｲｳ", P.upper(), "", "親契約 サンプル",
     "1", "$2b$12$" + "a" * 53],
    ["plain", "plain@example.jp", "佐藤 次郎", "0312345678", P, "", "親契約 サンプル", "no", ""],
]


@pytest.fixture(params=["per-batch lookups", "bulk load"])
def mode(request, monkeypatch):
    """Every end-to-end test runs both ways: indexes kept (small files) and suspended (big files)."""
    if request.param == "bulk load":
        monkeypatch.setattr(import_run, "SUSPEND_INDEX_MIN_ROWS", 1)
    return request.param


def write_csv(path, rows, header=HEADER, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def migrate(runner, csv_path, *extra, report=None):
    args = ["migrate-legacy", str(csv_path), *extra]
    if report:
        args += ["--report", str(report)]
    return runner.invoke(args=args)


def read_report(path):
    with open(path, encoding="utf-8", newline="") as fh:
        assert not fh.read(1) == "\ufeff"
        fh.seek(0)
        return list(csv.DictReader(fh))


def snapshot():
    """What the import decides, independent of ids and timestamps."""
    users = sorted((u.portal, u.login_id, u.email, u.name, u.phone, u.is_admin, u.contract.ecid,
                    u.legacy_login_id, u.legacy_phone) for u in User.select())
    legacy = sorted((la.login_id, la.contract_ecid, la.parent_ecid, la.phone, la.source_line,
                     la.user.login_id if la.user else None) for la in LegacyAccount.select())
    contracts = sorted((c.ecid, c.parent.ecid if c.parent else None, c.name, c.users_total)
                       for c in Contract.select())
    return users, legacy, contracts


def test_a_legacy_export_becomes_users_of_the_two_portals(db, runner, tmp_path, mode):
    path = write_csv(tmp_path / "users.csv", ROWS)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0, result.output
    assert "3 migrated, 0 skipped, 0 rejected" in result.output

    parent, child = Contract.by_ecid(P), Contract.by_ecid(C)
    assert parent.parent_id is None and child.parent_id == parent.id
    assert (parent.name, child.name) == ("親契約 サンプル", "子契約 みどり商事")
    assert (parent.users_total, child.users_total) == (2, 1)

    yamada = User.by_login_id(BUSINESS, "sample@ntt.com")
    assert yamada.name == "山田\u3000太郎"                  # byte for byte, full-width space kept
    assert yamada.phone == "031234" and yamada.legacy_phone == "03-1234-ｱｲｳ"
    assert yamada.is_admin and yamada.contract_id == parent.id and yamada.origin == ORIGIN_LEGACY
    assert yamada.password_hash is None and yamada.first_login_done_at is None
    assert yamada.migrated_at is not None and yamada.legacy_login_id == "sample@ntt.com"
    kodomo = User.by_login_id(SDPF, "kodomo@example.jp")
    assert kodomo.email == "Kodomo@Example.jp" and kodomo.email_key == "kodomo@example.jp"
    assert kodomo.phone == "090-1111-2222"                  # SDPF phones are kept as given
    assert not kodomo.is_admin and kodomo.contract_id == child.id
    assert User.by_login_id(BUSINESS, "kodomo@example.jp") is None

    legacy = LegacyAccount.get(LegacyAccount.login_id == "sample@ntt.com")
    assert legacy.contract_ecid == P and legacy.parent_ecid is None and legacy.user_id == yamada.id
    assert legacy.phone == "031234"                          # the legacy record changes too (note 3)
    assert legacy.password_hash == "$2b$12$" + "a" * 53 and legacy.source_line == 3
    assert legacy.name == "山田\u3000太郎" and legacy.is_admin

    assert read_report(tmp_path / "report.csv") == [
        {"line": "2", "status": "migrated", "legacy_login_id": "kodomo@example.jp",
         "login_id": "kodomo@example.jp", "legacy_phone": "090-1111-2222", "phone": "090-1111-2222",
         "reason": ""},
        {"line": "3", "status": "migrated", "legacy_login_id": "sample@ntt.com", "login_id": "sample@ntt.com",
         "legacy_phone": "03-1234-ｱｲｳ", "phone": "031234", "reason": "phone: changed by the phone rule"},
        {"line": "4", "status": "migrated", "legacy_login_id": "plain", "login_id": "plain",
         "legacy_phone": "0312345678", "phone": "0312345678", "reason": ""},
    ]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_bom_and_cp932_exports_read_the_same(db, runner, tmp_path, encoding):
    path = write_csv(tmp_path / "users.csv", ROWS, encoding=encoding)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0, result.output
    assert f"({encoding})" in result.output
    assert User.by_login_id(BUSINESS, "sample@ntt.com").name == "山田\u3000太郎"
    assert Contract.by_ecid(C).name == "子契約 みどり商事"


def test_a_file_that_is_neither_utf8_nor_cp932_stops_before_writing(db, runner, tmp_path):
    path = tmp_path / "users.csv"
    write_csv(path, ROWS)
    with open(path, "ab") as fh:
        fh.write(b"bad,\x85\x20,x,,ecid1000000001,,x,0,\r\n")   # invalid in UTF-8 and in CP932
    result = migrate(runner, path)
    assert result.exit_code == 1
    assert "not UTF-8 nor CP932" in result.output and "line 5" in result.output
    assert Contract.select().count() == 0 and User.select().count() == 0


def test_a_missing_column_stops_before_writing_and_says_which(db, runner, tmp_path):
    header = [h for h in HEADER if h != "phone"]
    path = write_csv(tmp_path / "users.csv", [r[:3] + r[4:] for r in ROWS], header=header)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1
    assert "missing column(s): phone" in result.output
    assert Contract.select().count() == 0 and not (tmp_path / "report.csv").exists()


def test_wrong_usage_exits_2_and_a_missing_file_exits_1(db, runner, tmp_path):
    assert runner.invoke(args=["migrate-legacy"]).exit_code == 2
    result = migrate(runner, tmp_path / "nope.csv")
    assert result.exit_code == 1 and "no such file" in result.output


def test_lines_count_physical_lines_with_multi_line_fields(db, runner, tmp_path, mode):
    rows = [
        ["a", "a@example.jp", "甲", "", P, "", "親契約\n二行目\n三行目", "0", ""],   # lines 2-4
        ["b", "bad address", "乙", "", P, "", "親契約", "0", ""],                   # line 5
    ]
    path = write_csv(tmp_path / "users.csv", rows)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0
    report = read_report(tmp_path / "report.csv")
    assert [(r["line"], r["status"]) for r in report] == [("2", "migrated"), ("5", "rejected")]
    assert report[1]["reason"].startswith("email: ")
    assert f"{path}:5: email: " in result.output
    assert Contract.by_ecid(P).name == "親契約\n二行目\n三行目"


def test_bad_rows_are_rejected_with_the_field_and_good_rows_imported(db, runner, tmp_path, mode):
    rows = ROWS + [
        ["orphan", "o@example.jp", "孤児", "", "ecid3000000001", "ecid3999999999", "孤児契約", "0", ""],
        ["badecid", "b@example.jp", "誤", "", "ecid123", "", "x", "0", ""],
        ["admin?", "c@example.jp", "誤", "", P, "", "親契約 サンプル", "maybe", ""],
        ["short", "s@example.jp"],
        # the same pair again (login IDs compare ignoring case)
        ["Plain", "again@example.jp", "佐藤 次郎", "", P, "", "親契約 サンプル", "0", ""],
        ["wrongparent", "w@example.jp", "誤", "", C, "", "子契約", "0", ""],
    ]
    path = write_csv(tmp_path / "users.csv", rows)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0
    report = {int(r["line"]): r for r in read_report(tmp_path / "report.csv")}
    assert [report[n]["status"] for n in (2, 3, 4)] == ["migrated"] * 3
    assert report[5]["reason"].startswith("parent_ecid: parent contract ecid3999999999 is neither")
    assert report[6]["reason"].startswith("contract_ecid: not an ECID")
    assert report[7]["reason"].startswith("is_admin: ")
    assert report[8]["reason"].startswith("name: missing (the row has fewer fields")
    assert report[9]["reason"] == "login_id: duplicate of line 4 (same login ID and contract_ecid)"
    assert report[10]["reason"].startswith(f"parent_ecid: {C} is a child contract of {P}")
    assert all(report[n]["status"] == "rejected" for n in range(5, 11))
    assert User.select().count() == 3 and Contract.by_ecid("ecid3000000001") is None


def test_login_id_conflicts_with_native_users_are_suffixed_or_rejected(db, runner, tmp_path, mode):
    native_parent = gen_contract(ecid="ecid9000000001")
    gen_user(native_parent, login_id="Sample@NTT.com")                       # case differs
    gen_user(native_parent, login_id="taken")
    gen_user(native_parent, login_id=f"taken_{P}")                           # the suffixed ID too
    sdpf_parent = gen_contract(ecid="ecid9000000002")
    gen_user(gen_contract(parent=sdpf_parent), login_id="kodomo@example.jp")  # the other portal's namespace
    rows = ROWS + [
        ["taken", "t@example.jp", "取得済", "", P, "", "親契約 サンプル", "0", ""],
        ["kodomo@example.jp", "k2@example.jp", "子供 二郎", "", "ecid2000000002", P, "子契約 あおば",
         "0", ""],
    ]
    path = write_csv(tmp_path / "users.csv", rows)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0
    report = {int(r["line"]): r for r in read_report(tmp_path / "report.csv")}
    assert report[3]["login_id"] == f"sample@ntt.com_{P}"
    assert report[3]["reason"].startswith(
        f"login_id: exists in the business portal, changed to sample@ntt.com_{P}")
    assert User.by_login_id(BUSINESS, f"SAMPLE@ntt.com_{P}").legacy_login_id == "sample@ntt.com"
    assert report[5]["status"] == "rejected" and report[5]["reason"].startswith("login_id: 'taken' and")
    # SDPF: a native SDPF user and an earlier row of the file both hold the ID: first come, first served
    assert report[2]["login_id"] == f"kodomo@example.jp_{C}"
    assert report[6]["login_id"] == "kodomo@example.jp_ecid2000000002"
    assert "login IDs changed: 3" in result.output


def test_a_second_run_changes_nothing_and_reports_every_row_skipped(db, runner, tmp_path, mode):
    rows = ROWS + [["sample@ntt.com", "d@example.jp", "重複", "", P, "", "親契約 サンプル", "0", ""]]
    path = write_csv(tmp_path / "users.csv", rows)
    first = migrate(runner, path, report=tmp_path / "first.csv")
    assert first.exit_code == 0
    before = snapshot()
    # a console correction after the first run: the report shows what the database holds
    User.update(login_id="plain-corrected", login_id_key="plain-corrected").where(
        User.login_id == "plain").execute()
    result = migrate(runner, path, report=tmp_path / "second.csv")
    assert result.exit_code == 0
    assert "0 migrated, 3 skipped, 1 rejected" in result.output
    # a big file bulk-loads (indexes suspended, rebuilt); its re-run has nothing new to load
    assert ("s search index" in first.output) == (mode == "bulk load")
    assert "s search index" not in result.output
    report = read_report(tmp_path / "second.csv")
    assert [r["status"] for r in report] == ["skipped", "skipped", "skipped", "rejected"]
    assert report[1]["phone"] == "031234" and report[2]["login_id"] == "plain-corrected"
    assert report[3]["reason"] == "login_id: duplicate of line 3 (same login ID and contract_ecid)"
    User.update(login_id="plain", login_id_key="plain").where(User.login_id == "plain-corrected").execute()
    assert snapshot() == before


def test_dry_run_writes_nothing_and_reports_what_the_real_run_does(db, runner, tmp_path, mode):
    gen_user(gen_contract(ecid="ecid9000000001"), login_id="sample@ntt.com")
    rows = ROWS + [["plain", "x@example.jp", "重複", "", P, "", "親契約 サンプル", "0", ""]]
    path = write_csv(tmp_path / "users.csv", rows)
    result = migrate(runner, path, "--dry-run", report=tmp_path / "dry.csv")
    assert result.exit_code == 0 and "dry run, nothing written" in result.output
    assert User.select().count() == 1 and Contract.select().count() == 1
    assert LegacyAccount.select().count() == 0
    assert migrate(runner, path, report=tmp_path / "real.csv").exit_code == 0
    assert (tmp_path / "dry.csv").read_bytes() == (tmp_path / "real.csv").read_bytes()
    assert User.select().count() == 4


def _forget_imported_users():
    """Back to before the import, contracts kept (a re-run matches them by ECID)."""
    database.execute_sql("DELETE FROM legacy_account")
    database.execute_sql("DELETE FROM \"user\"")
    database.execute_sql("UPDATE contract SET users_total = 0")


def test_a_run_killed_mid_way_and_run_again_equals_one_clean_run(db, runner, tmp_path, monkeypatch, mode):
    rows = [[f"user{i}@example.jp", f"user{i}@example.jp", f"利用者\u3000{i}", f"03-0000-{i:04d}",
             P if i % 3 else C, "" if i % 3 else P, "契約", "0", ""] for i in range(12)]
    rows[7][0] = "user1@example.jp"          # a conflict with an earlier row of the file (other contract)
    rows[9] = list(rows[4])                  # a duplicate
    path = write_csv(tmp_path / "users.csv", rows)
    monkeypatch.setattr(import_run, "BATCH_SIZE", 3)
    assert migrate(runner, path).exit_code == 0
    clean = snapshot()

    _forget_imported_users()
    real_write, calls = legacy_import.Writer.write, []

    def dying_write(self, new):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real_write(self, new)

    monkeypatch.setattr(legacy_import.Writer, "write", dying_write)
    result = migrate(runner, path)
    assert result.exit_code == 1 and "run the same command again to resume" in result.output
    assert LegacyAccount.select().count() == User.select().count() == 6   # whole batches only
    assert sum(c.users_total for c in Contract.select()) == 6
    monkeypatch.setattr(legacy_import.Writer, "write", real_write)
    result = migrate(runner, path, report=tmp_path / "resumed.csv")
    assert result.exit_code == 0
    assert snapshot() == clean
    statuses = [r["status"] for r in read_report(tmp_path / "resumed.csv")]
    assert statuses[:6] == ["skipped"] * 6 and "migrated" in statuses[6:]


def test_an_interrupted_bulk_load_is_repaired_by_the_next_run(db, runner, tmp_path, monkeypatch):
    from accounts import search_index

    with database.atomic():
        search_index.drop()          # as left by a kill inside search_index.suspended()
        search_index.create()
        for sql in ("DROP TRIGGER IF EXISTS user_search_ai", 'DROP INDEX IF EXISTS "user_email_key"'):
            if is_postgres() and "TRIGGER" in sql:
                continue
            database.execute_sql(sql)
        if is_postgres():
            database.execute_sql("DROP INDEX IF EXISTS user_name_trgm")
    gen_user(gen_contract(), login_id="native-while-broken", name="壊れた間の利用者")
    path = write_csv(tmp_path / "users.csv", ROWS)
    result = migrate(runner, path)
    assert result.exit_code == 0
    assert "an earlier import was interrupted; restored: index user(email_key), search index" in result.output
    from playhouse.schema_diff import diff_models

    from accounts.models import ALL_MODELS
    diff = diff_models(database.obj, ALL_MODELS)
    assert not [i for i in diff.add_indexes if i.name not in search_index.OWN_INDEXES]
    assert _search("壊れた間") and _search("ple@ntt")


def _search(text):
    """Substring search as the console does it: FTS5 trigram on SQLite, pg_trgm (ILIKE) on PG."""
    from accounts import search_index

    if is_postgres():
        columns = " OR ".join(f"{c} ILIKE %s" for c in search_index.SEARCH_COLUMNS)
        return [r[0] for r in database.execute_sql(f'SELECT id FROM "user" WHERE {columns}',
                                                   [f"%{text}%"] * 4).fetchall()]
    return [r[0] for r in database.execute_sql(
        "SELECT rowid FROM user_search WHERE user_search MATCH ?", [f'"{text}"']).fetchall()]


def test_the_search_index_finds_imported_users(db, runner, tmp_path, mode):
    path = write_csv(tmp_path / "users.csv", ROWS)
    assert migrate(runner, path).exit_code == 0
    yamada = User.by_login_id(BUSINESS, "sample@ntt.com")
    assert _search("山田\u3000太") == [yamada.id]
    assert _search("ple@ntt") == [yamada.id]
    if not is_postgres():
        phone = database.execute_sql("SELECT rowid FROM user_search WHERE user_search MATCH ?",
                                     ['phone:"1234"']).fetchall()
        assert (yamada.id,) in phone


def _foreign_keys():
    return sorted(database.execute_sql(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid IN ('\"user\"'::regclass, 'legacy_account'::regclass)").fetchall())


def test_a_bulk_load_puts_the_foreign_keys_back_and_a_killed_one_is_repaired(db, runner, tmp_path,
                                                                            monkeypatch):
    if not is_postgres():
        pytest.skip("PostgreSQL drops its foreign keys during a bulk load; SQLite keeps them")
    monkeypatch.setattr(import_run, "SUSPEND_INDEX_MIN_ROWS", 1)
    before = _foreign_keys()
    assert len(before) == 2
    path = write_csv(tmp_path / "users.csv", ROWS)
    assert migrate(runner, path).exit_code == 0
    assert _foreign_keys() == before
    _forget_imported_users()
    database.execute_sql("ALTER TABLE legacy_account DROP CONSTRAINT legacy_account_user_id_fkey")
    result = migrate(runner, path)
    assert result.exit_code == 0, result.output
    assert "restored: foreign key legacy_account_user_id_fkey" in result.output, result.output
    assert _foreign_keys() == before


def _numbered_rows(count: int) -> list[list[str]]:
    """``count`` rows of one parent contract, user0@example.jp onwards."""
    return [[f"user{i}@example.jp", f"user{i}@example.jp", f"利用者 {i}", "0312345678", P, "", "契約", "0",
             ""] for i in range(count)]


def test_a_bulk_load_leaves_postgresql_ready_for_index_only_scans_and_planned(db, runner, tmp_path,
                                                                             monkeypatch):
    """After a bulk load the loaded tables are vacuumed and analysed at once: the console's
    index-only scans need the visibility map (empty after a load) and the planner the columns'
    statistics, which autovacuum would bring only a minute or more later."""
    if not is_postgres():
        pytest.skip("PostgreSQL's visibility map and statistics; SQLite needs neither")
    monkeypatch.setattr(import_run, "SUSPEND_INDEX_MIN_ROWS", 1)
    rows = _numbered_rows(300)
    result = migrate(runner, write_csv(tmp_path / "users.csv", rows))
    assert result.exit_code == 0, result.output
    assert " s statistics" in result.output
    for table in ("user", "legacy_account"):
        pages, visible = database.execute_sql("SELECT relpages, relallvisible FROM pg_class "
                                              "WHERE oid = %s::regclass", [f'"{table}"']).fetchone()
        assert pages > 0 and visible == pages, (table, pages, visible)
        analysed = database.execute_sql("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() "
                                        "AND tablename = %s", [table]).fetchone()[0]
        assert analysed > 0, table


def test_a_batch_that_fails_while_the_next_is_checked_stops_the_run_with_whole_batches(
        db, runner, tmp_path, monkeypatch):
    """PostgreSQL bulk loads write each batch from a thread while the next batch is checked."""
    if not is_postgres():
        pytest.skip("SQLite writes its batches on the main thread")
    monkeypatch.setattr(import_run, "SUSPEND_INDEX_MIN_ROWS", 1)
    monkeypatch.setattr(import_run, "BATCH_SIZE", 3)
    rows = _numbered_rows(12)
    path = write_csv(tmp_path / "users.csv", rows)
    real_copy_in, calls = legacy_import.Writer.copy_in, []

    def failing_copy_in(self, cursor, batch):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_copy_in(self, cursor, batch)

    monkeypatch.setattr(legacy_import.Writer, "copy_in", failing_copy_in)
    result = migrate(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1 and "RuntimeError: disk full" in result.output
    assert User.select().count() == LegacyAccount.select().count() == 3
    assert [r["line"] for r in read_report(tmp_path / "report.csv")] == ["2", "3", "4"]
    monkeypatch.setattr(legacy_import.Writer, "copy_in", real_copy_in)
    assert migrate(runner, path).exit_code == 0
    assert User.select().count() == 12 and sum(c.users_total for c in Contract.select()) == 12
