"""`flask import-services` end to end on a real database (SPEC 12): file in, services and report out."""
import csv
import os

import peewee
import pytest

from accounts import services
from accounts.models import AuditEntry, Service
from accounts.schema import runner as schema_runner
from tests.helpers import gen_contract

HEADER = ["contract_ecid", "service", "status"]
P = "ecid1000000001"
C = "ecid1000000002"


@pytest.fixture(params=["one batch", "batches of 2"])
def batches(request, monkeypatch):
    """Every end-to-end test runs with the whole file in one batch and split across batches (the
    lookups and the duplicate check then go through the database, not the batch)."""
    if request.param == "batches of 2":
        monkeypatch.setattr(services, "BATCH_SIZE", 2)
    return request.param


@pytest.fixture
def contracts(db):
    parent = gen_contract(ecid=P, name="親契約")
    child = gen_contract(parent=parent, ecid=C, name="子契約")
    return parent, child


def write_csv(path, rows, header=HEADER, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def import_services(runner, csv_path, *extra, report=None):
    args = ["import-services", str(csv_path), *extra]
    if report:
        args += ["--report", str(report)]
    return runner.invoke(args=args)


def read_report(path):
    with open(path, encoding="utf-8", newline="") as fh:
        assert fh.read(1) != "\ufeff"
        fh.seek(0)
        return list(csv.DictReader(fh))


def held():
    return sorted((s.contract.ecid, s.name, s.status) for s in Service.select())


ROWS = [
    [P.upper(), "Smart Data Platform", "お申し込み済み"],
    [C, "Smart Data Platform", "手続き中"],
    [P, "Flexible InterConnect", " 解約済み "],
]


def test_a_services_file_becomes_the_contracts_services_with_a_report_and_an_audit_entry(
        runner, contracts, tmp_path, batches):
    path = write_csv(tmp_path / "services.csv", ROWS)
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0, result.output
    assert "3 rows (utf-8): 3 imported, 0 updated, 0 skipped, 0 rejected" in result.output
    assert held() == [(P, "Flexible InterConnect", "解約済み"), (P, "Smart Data Platform", "お申し込み済み"),
                      (C, "Smart Data Platform", "手続き中")]
    assert read_report(tmp_path / "report.csv") == [
        {"line": "2", "status": "imported", "contract_ecid": P, "service": "Smart Data Platform",
         "old_status": "", "new_status": "お申し込み済み", "reason": ""},
        {"line": "3", "status": "imported", "contract_ecid": C, "service": "Smart Data Platform",
         "old_status": "", "new_status": "手続き中", "reason": ""},
        {"line": "4", "status": "imported", "contract_ecid": P, "service": "Flexible InterConnect",
         "old_status": "", "new_status": "解約済み", "reason": ""},
    ]
    entry = AuditEntry.get(AuditEntry.action == "services_imported")
    assert entry.actor_kind == "system" and entry.actor_label == "cli"
    assert entry.detail == f"{path}: 3 rows: 3 imported, 0 updated, 0 skipped, 0 rejected"
    assert not os.path.exists(tmp_path / "report.csv.part")


def test_running_the_same_file_again_skips_every_row_and_a_changed_status_is_updated(
        runner, contracts, tmp_path, batches):
    path = write_csv(tmp_path / "services.csv", ROWS)
    assert import_services(runner, path).exit_code == 0
    first = held()
    again = import_services(runner, path, report=tmp_path / "again.csv")
    assert again.exit_code == 0, again.output
    assert "0 imported, 0 updated, 3 skipped, 0 rejected" in again.output
    assert held() == first
    assert [r["status"] for r in read_report(tmp_path / "again.csv")] == ["skipped"] * 3

    changed = write_csv(tmp_path / "changed.csv", [[C, "Smart Data Platform", "ご利用中"], ROWS[0]])
    result = import_services(runner, changed, report=tmp_path / "changed-report.csv")
    assert "0 imported, 1 updated, 1 skipped, 0 rejected" in result.output
    report = read_report(tmp_path / "changed-report.csv")
    assert (report[0]["status"], report[0]["old_status"], report[0]["new_status"]) == \
        ("updated", "手続き中", "ご利用中")
    assert (C, "Smart Data Platform", "ご利用中") in held() and len(held()) == 3  # nothing removed
    assert [e.detail.split(": ", 1)[1] for e in
            AuditEntry.select().where(AuditEntry.action == "services_imported").order_by(AuditEntry.id)] == [
        "3 rows: 3 imported, 0 updated, 0 skipped, 0 rejected",
        "3 rows: 0 imported, 0 updated, 3 skipped, 0 rejected",
        "2 rows: 0 imported, 1 updated, 1 skipped, 0 rejected"]


def test_bad_rows_are_rejected_with_line_and_field_and_good_rows_imported(runner, contracts, tmp_path,
                                                                         batches):
    rows = [
        ["ecid9999999999", "Smart Data Platform", "お申し込み済み"],     # 2 unknown contract
        ["ecid12", "Smart Data Platform", "お申し込み済み"],             # 3 not an ECID
        [P, "", "お申し込み済み"],                                       # 4 empty service
        [P, "Smart Data Platform", "\u3000 "],                          # 5 blank status
        [P, "S" * 256, "お申し込み済み"],                                # 6 service too long
        [P, "Smart Data Platform", "済" * 101],                          # 7 status too long
        [P, "Smart\nData", "お申し込み済み"],                             # 8-9 line break
        [P, "Smart Data Platform"],                                      # 10 fewer fields
        [P, "Smart Data Platform", "お申し込み済み", "x"],                # 11 more fields
        [C, "Smart Data Platform", "お申し込み済み"],                     # 12 good
        [C.upper(), "Smart Data Platform", "手続き中"],                   # 13 duplicate of 12
        [P, "S" * 255, "済" * 100],                                      # 14 longest allowed
    ]
    path = write_csv(tmp_path / "services.csv", rows)
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0, result.output
    assert "12 rows (utf-8): 2 imported, 0 updated, 0 skipped, 10 rejected" in result.output
    report = read_report(tmp_path / "report.csv")
    assert [(r["line"], r["status"], r["reason"].split(":")[0]) for r in report] == [
        ("2", "rejected", "contract_ecid"), ("3", "rejected", "contract_ecid"),
        ("4", "rejected", "service"), ("5", "rejected", "status"), ("6", "rejected", "service"),
        ("7", "rejected", "status"), ("8", "rejected", "service"), ("10", "rejected", "status"),
        ("11", "rejected", "the row has 4 fields, the header 3"), ("12", "imported", ""),
        ("13", "rejected", "service"), ("14", "imported", "")]
    reasons = {r["line"]: r["reason"] for r in report}
    assert "no contract ecid9999999999 in the database" in reasons["2"]
    assert reasons["4"] == "service: missing" and reasons["5"] == "status: missing"
    assert reasons["6"] == "service: longer than 255 characters"
    assert reasons["7"] == "status: longer than 100 characters"
    assert reasons["8"] == "service: contains a line break or a control character"
    assert reasons["10"] == "status: missing (the row has fewer fields than the header)"
    assert reasons["13"] == "service: duplicate of line 12 (same contract_ecid and service)"
    assert f"{path}:2: contract_ecid: no contract" in result.output
    assert f"{path}:13: service: duplicate of line 12" in result.output
    assert held() == [(P, "S" * 255, "済" * 100), (C, "Smart Data Platform", "お申し込み済み")]
    # A rejected row stays rejected on a re-run until the file is fixed.
    again = import_services(runner, path, report=tmp_path / "again.csv")
    assert "0 imported, 0 updated, 2 skipped, 10 rejected" in again.output
    assert [r["status"] for r in read_report(tmp_path / "again.csv")] == \
        [r["status"].replace("imported", "skipped") for r in report]


def test_a_formula_in_the_file_is_quoted_in_the_report(runner, contracts, tmp_path):
    path = write_csv(tmp_path / "services.csv", [[P, "=HYPERLINK(\"x\")", "+1"]])
    assert import_services(runner, path, report=tmp_path / "report.csv").exit_code == 0
    report = read_report(tmp_path / "report.csv")
    assert (report[0]["service"], report[0]["new_status"]) == ("'=HYPERLINK(\"x\")", "'+1")
    assert held() == [(P, "=HYPERLINK(\"x\")", "+1")]  # stored as given, escaped on every page


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_bom_and_shift_jis_files_read_the_same(runner, contracts, tmp_path, encoding):
    path = write_csv(tmp_path / "services.csv", ROWS, encoding=encoding)
    result = import_services(runner, path)
    assert result.exit_code == 0, result.output
    assert f"({encoding})" in result.output and "3 imported" in result.output
    assert (C, "Smart Data Platform", "手続き中") in held()


def _one_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_a_binary_file_is_refused_in_one_line_and_nothing_is_written(runner, contracts, tmp_path):
    path = tmp_path / "services.xlsx"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe\x85\x80\x00" * 50)
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1
    line = _one_line(result)
    assert line.startswith("error: ") and "not UTF-8 nor CP932" in line and "nothing was imported" in line
    assert held() == [] and not (tmp_path / "report.csv").exists()


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty (no header row)"),
    (b"\r\n\r\n", "the file is empty (no header row)"),
    (b"contract_ecid,service\r\necid1000000001,x\r\n", "line 1: missing column(s): status"),
    (b"contract_ecid,service,status,service\r\n", "line 1: column 'service' appears twice"),
])
def test_a_file_that_cannot_be_used_exits_1_in_one_line(runner, contracts, tmp_path, content, reason):
    path = tmp_path / "services.csv"
    path.write_bytes(content)
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1
    assert reason in _one_line(result)
    assert held() == [] and not (tmp_path / "report.csv").exists()
    assert not AuditEntry.select().where(AuditEntry.action == "services_imported").exists()


def test_a_header_only_file_is_processed_with_zero_rows(runner, contracts, tmp_path):
    path = write_csv(tmp_path / "services.csv", [])
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 0 and "0 rows (utf-8)" in result.output
    assert read_report(tmp_path / "report.csv") == []


def test_usage_errors_exit_2_and_a_missing_file_or_the_input_as_report_exit_1(runner, contracts, tmp_path):
    assert runner.invoke(args=["import-services"]).exit_code == 2
    assert runner.invoke(args=["import-services", "a.csv", "--nope"]).exit_code == 2
    assert runner.invoke(args=["import-services", "a.csv", "--report"]).exit_code == 2
    assert runner.invoke(args=["import-services", str(tmp_path)]).exit_code == 2  # a directory
    result = import_services(runner, tmp_path / "nope.csv")
    assert result.exit_code == 1 and "no such file" in _one_line(result)
    path = write_csv(tmp_path / "services.csv", ROWS)
    result = import_services(runner, path, report=path)
    assert result.exit_code == 1 and "the report would overwrite the input file" in _one_line(result)
    result = import_services(runner, path, report=tmp_path / "no-dir" / "report.csv")
    assert result.exit_code == 1 and "cannot write the report" in _one_line(result)
    assert held() == []


def test_dry_run_writes_nothing_and_reports_what_the_real_run_does(runner, contracts, tmp_path, batches):
    Service.create(contract=contracts[1], name="Smart Data Platform", status="お申し込み済み")
    rows = ROWS + [[P, "Smart Data Platform", "dup"], ["ecid9999999999", "x", "y"]]
    path = write_csv(tmp_path / "services.csv", rows)
    before = held()
    dry = import_services(runner, path, "--dry-run", report=tmp_path / "dry.csv")
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[-2].startswith("dry run, nothing written: 5 rows")
    assert held() == before
    assert not AuditEntry.select().where(AuditEntry.action == "services_imported").exists()
    real = import_services(runner, path, report=tmp_path / "real.csv")
    assert read_report(tmp_path / "dry.csv") == read_report(tmp_path / "real.csv")
    assert [r["status"] for r in read_report(tmp_path / "real.csv")] == \
        ["imported", "updated", "imported", "rejected", "rejected"]
    assert "2 imported, 1 updated, 0 skipped, 2 rejected" in real.output


def test_a_database_failure_part_way_leaves_nothing_written(runner, contracts, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    calls = []
    real_write = services._Store.write

    def failing_write(self, *rows):
        calls.append(rows)
        if len(calls) == 2:  # the first batch is written, the second fails
            raise peewee.OperationalError("disk I/O error\nDETAIL: more")
        return real_write(self, *rows)

    monkeypatch.setattr(services._Store, "write", failing_write)
    path = write_csv(tmp_path / "services.csv", ROWS)
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1
    line = _one_line(result)
    assert "the import stopped: OperationalError: disk I/O error. Nothing was imported" in line
    assert held() == [] and not AuditEntry.select().where(AuditEntry.action == "services_imported").exists()
    assert sorted(os.listdir(tmp_path)) == ["services.csv"]  # no report, no partial report


def test_a_file_broken_part_way_leaves_nothing_written(runner, contracts, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    path = tmp_path / "services.csv"
    write_csv(path, ROWS + [[P, "x" * 200_000, "y"]])  # over the csv module's field limit
    result = import_services(runner, path, report=tmp_path / "report.csv")
    assert result.exit_code == 1
    line = _one_line(result)
    assert f"{path}:5: not valid CSV" in line and line.endswith("nothing was imported")
    assert held() == [] and not (tmp_path / "report.csv").exists()


def test_migration_0008_turns_states_into_the_labels_users_saw_and_back(contracts):
    """Down to the three codes and up again: the labels the dashboard showed for each code."""
    parent, child = contracts
    for name, status in (("a", "お申し込み済み"), ("b", "手続き中"), ("c", "解約済み"), ("d", "ご利用中")):
        Service.create(contract=parent, name=name, status=status)
    migrations = schema_runner()
    try:
        undone = migrations.down("0008_service_status")  # the later migrations first, then 0008
        assert undone[-1] == "0008_service_status" and all(name > "0008" for name in undone)
        rows = services.database.execute_sql('SELECT name, state FROM "service" ORDER BY name').fetchall()
        assert rows == [("a", "subscribed"), ("b", "in_progress"), ("c", "cancelled"), ("d", "subscribed")]
        services.database.execute_sql(
            f'INSERT INTO "service" (contract_id, name, state) VALUES ({child.id}, \'e\', \'paused\')')
    finally:
        assert migrations.up() == sorted(undone)
    assert sorted((s.name, s.status) for s in Service.select()) == [
        ("a", "お申し込み済み"), ("b", "手続き中"), ("c", "解約済み"), ("d", "お申し込み済み"),
        ("e", "paused")]
