"""Bulk corrections by CSV (SPEC 14) as functions: reading the file, the preview's rules (scope,
portal, duplicates, the console's checks), and the apply (stale rows, mails, audit, idempotence)."""
import codecs
import datetime
import json

import pytest

from accounts import bulk_corrections as bulk
from accounts import console, period
from accounts.clock import utcnow
from accounts.models import AuditEntry, BulkRow, BulkUpload, Mail, Staff, User
from tests.helpers import gen_contract, gen_user

# Applying renders mails: an application context (no request).
pytestmark = pytest.mark.usefixtures("app_ctx")


def _op(login_id="op", role="operator"):
    return Staff.create(login_id=login_id, login_id_key=login_id, role=role, password_hash="x")


def _write(tmp_path, text, encoding="utf-8", name="fix.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _preview(principal, tmp_path, text, encoding="utf-8"):
    return bulk.preview(principal, _write(tmp_path, text, encoding), "fix.csv")


def _rows(upload):
    return {r.line: r for r in BulkRow.select().where(BulkRow.upload == upload.id)}


def _errors(row):
    return json.loads(row.errors) if row.errors else {}


@pytest.fixture
def tree(db):
    """A parent contract with two children, and another tree out of the parent admin's scope."""
    parent = gen_contract(ecid="ecid1000000001")
    child = gen_contract(parent=parent, ecid="ecid1000000002")
    child2 = gen_contract(parent=parent, ecid="ecid1000000003")
    other = gen_contract(ecid="ecid2000000001")
    other_child = gen_contract(parent=other, ecid="ecid2000000002")

    class T:
        pass

    t = T()
    t.parent, t.child, t.child2, t.other, t.other_child = parent, child, child2, other, other_child
    t.parent_admin = gen_user(parent, login_id="padmin", is_admin=True, first_login_done=True)
    t.child_admin = gen_user(child, login_id="cadmin", is_admin=True, first_login_done=True)
    t.a = gen_user(child, login_id="user-a", email="a@example.jp", name="山田 太郎", phone="0311112222")
    t.b = gen_user(child2, login_id="user-b", email="b@example.jp", name="佐藤\u3000花子")
    t.p = gen_user(parent, login_id="user-p", email="p@example.jp")
    t.outside = gen_user(other_child, login_id="user-x", email="x@example.jp")
    return t


# --- reading the file -------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_utf8_with_or_without_bom_and_cp932_read_the_same(tmp_path, encoding):
    text = "login_id,name,phone\r\nuser-a,高橋\u3000一郎,03-1111-2222\r\n"
    parsed = bulk.read_file(_write(tmp_path, text, encoding))
    assert parsed.columns == ["login_id", "name", "phone"]
    assert [(r.line, r.cells) for r in parsed.rows] == [
        (2, {"login_id": "user-a", "name": "高橋\u3000一郎", "phone": "03-1111-2222"})]


def test_lines_are_numbered_as_in_the_file_blank_lines_skipped_header_names_forgiving(tmp_path):
    text = ' Login_ID ,NEW_EMAIL\n\nuser-a,a@example.jp\n"user\nb",b@example.jp\nuser-c,c@example.jp\n'
    parsed = bulk.read_file(_write(tmp_path, text))
    assert parsed.columns == ["login_id", "new_email"]
    assert [r.line for r in parsed.rows] == [3, 4, 6]  # a quoted cell over two lines starts on 4


@pytest.mark.parametrize("content,code,args", [
    (b"", "empty", {}),
    (b"\r\n\r\n", "empty", {}),
    (b"login_id,new_email\r\n", "no_rows", {}),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "not_csv", {}),
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "not_csv", {}),  # an .xlsx
    (codecs.BOM_UTF16_LE + "login_id,name\r\n".encode("utf-16-le"), "not_csv", {}),
    (b"login_id,name\r\n\x82\xa0\x82\xff\xff,x\r\n", "not_csv", {}),  # neither UTF-8 nor CP932
    (b'login_id,name\r\n"user-a,x\r\n', "not_csv", {}),  # a quote never closed
    (b"email,name\r\nuser-a,x\r\n", "no_login_id", {"column": "login_id"}),
    ("ログインID,name\r\nuser-a,x\r\n".encode("cp932"), "no_login_id", {"column": "login_id"}),
    (b"login_id,name,password,\r\nuser-a,x,y,\r\n", "unknown_columns",
     {"columns": 'password, ""', "allowed": "login_id, portal, new_email, new_login_id, name, phone"}),
    (b"login_id,name,Name\r\nuser-a,x,y\r\n", "duplicate_column", {"column": "name"}),
    (b"login_id,portal\r\nuser-a,sdpf\r\n", "nothing_to_correct",
     {"columns": "new_email, new_login_id, name, phone"}),
])
def test_a_file_that_cannot_be_used_is_refused_with_one_reason_and_nothing_is_written(
        tree, tmp_path, content, code, args):
    with pytest.raises(bulk.FileRefused) as exc:
        bulk.preview(_op(), _write(tmp_path, content), "fix.csv")
    assert (exc.value.code, exc.value.args_) == (code, args)
    assert BulkUpload.select().count() == 0 and BulkRow.select().count() == 0


def test_a_file_over_10_mb_is_refused_before_it_is_read(tree, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as fh:
        fh.write(b"login_id,name\r\n")
        fh.write(b"x" * (bulk.MAX_BYTES - 15 + 1))
    with pytest.raises(bulk.FileRefused) as exc:
        bulk.preview(_op(), path, "big.csv")
    assert exc.value.code == "too_large" and exc.value.args_ == {"limit_mb": 10}
    assert BulkUpload.select().count() == 0


def test_a_file_of_50000_rows_is_taken_and_one_more_is_refused(tmp_path):
    rows = "".join(f"u{i},名前\r\n" for i in range(bulk.MAX_ROWS))
    assert len(bulk.read_file(_write(tmp_path, "login_id,name\r\n" + rows)).rows) == bulk.MAX_ROWS
    with pytest.raises(bulk.FileRefused) as exc:
        bulk.read_file(_write(tmp_path, "login_id,name\r\n" + rows + "one-more,名前\r\n"))
    assert exc.value.code == "too_many_rows" and exc.value.args_ == {"limit": 50000}


# --- preview ----------------------------------------------------------------------------------

def test_preview_shows_current_and_new_values_counts_and_writes_nothing_else(tree, tmp_path):
    before = {u.id: (u.email, u.login_id, u.name, u.phone, u.version) for u in User.select()}
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_email,new_login_id,name,phone\r\n"
                      "USER-A,new-a@example.jp,,,\r\n"          # login ID in any case
                      "user-b,,user-b2,,\r\n"
                      "user-p,, ,,\r\n"                         # blank cells: nothing to change
                      "user-a2,bad,,,\r\n"                      # not found
                      "user-b,,,,0399998888\r\n")               # duplicate of line 3
    assert (upload.rows_total, upload.rows_change, upload.rows_unchanged, upload.rows_error) == (5, 2, 1, 2)
    rows = _rows(upload)
    a = rows[2]
    assert (a.user_id, a.user_version, a.current_email, a.new_email, a.status, a.changes) == \
        (tree.a.id, tree.a.version, "a@example.jp", "new-a@example.jp", "change", "email")
    assert (rows[3].current_login_id, rows[3].new_login_id, rows[3].changes) == \
        ("user-b", "user-b2", "login_id")
    assert rows[4].status == "unchanged" and rows[4].new_login_id is None
    assert _errors(rows[5]) == {"login_id": ["not_found"]}
    assert _errors(rows[6]) == {"login_id": ["duplicate", 3]}
    after = {u.id: (u.email, u.login_id, u.name, u.phone, u.version) for u in User.select()}
    assert after == before
    assert not Mail.select().exists() and not AuditEntry.select().exists()


@pytest.mark.parametrize("column,value,code", [
    ("new_email", "no-at-sign", "email_format"),
    ("new_email", "全角@example.jp", "email_format"),
    ("new_login_id", "ab", "login_id_format"),
    ("new_login_id", "has space", "login_id_format"),
    ("new_login_id", "USER-B", "login_id_taken"),   # another user of the same portal, any case
    ("new_login_id", "cadmin", "login_id_taken"),
    ("name", " 先頭スペース", "name_edge_space"),
    ("name", "tab\there", "name_format"),
    ("phone", "03-1", "phone_format"),
    ("phone", "03-1234-ABCD", "phone_format"),
])
def test_each_bad_cell_gets_the_consoles_error(tree, tmp_path, column, value, code):
    upload = _preview(tree.parent_admin, tmp_path, f"login_id,{column}\r\nuser-a,\"{value}\"\r\n")
    row = _rows(upload)[2]
    assert row.status == "error" and _errors(row) == {column: [code]}
    assert console.validate(tree.a, console_field(column), value) == code  # the same function


def console_field(column):
    return bulk.FIELD_OF[column]


def test_a_login_id_taken_only_in_the_other_portal_or_out_of_scope_is_refused_per_portal(tree, tmp_path):
    gen_user(tree.parent, login_id="business-only")
    gen_user(tree.other_child, login_id="taken-elsewhere")  # SDPF, in another partner's tree
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_login_id\r\nuser-a,business-only\r\nuser-b,taken-elsewhere\r\n")
    rows = _rows(upload)
    assert rows[2].status == "change"  # the portals are separate namespaces
    assert _errors(rows[3]) == {"new_login_id": ["login_id_taken"]}  # unique in the whole portal


def test_two_rows_giving_the_same_new_login_id_the_first_counts(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_login_id\r\nuser-a,Shared-ID\r\nuser-b,shared-id\r\n"
                      "user-p,shared-id\r\n")
    rows = _rows(upload)
    assert rows[2].status == "change"
    assert _errors(rows[3]) == {"new_login_id": ["duplicate_new_login_id", 2]}
    assert rows[4].status == "change"  # user-p is a Business Portal user: another namespace


def test_a_repeated_login_id_is_a_duplicate_even_when_the_first_row_is_wrong(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_email,portal\r\nuser-a,bad,\r\nuser-a,ok@example.jp,\r\n"
                      "User-A,ok@example.jp,sdpf\r\n")
    rows = _rows(upload)
    assert _errors(rows[2]) == {"new_email": ["email_format"]}
    assert _errors(rows[3]) == {"login_id": ["duplicate", 2]}
    assert _errors(rows[4]) == {"login_id": ["duplicate", 2]}  # the same user, named with its portal


def test_a_user_out_of_scope_is_not_found_exactly_like_a_missing_one(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_email\r\nuser-x,new@example.jp\r\nno-such-user,new@example.jp\r\n")
    out, missing = _rows(upload)[2], _rows(upload)[3]
    fields = [f for f in BulkRow._meta.sorted_field_names if f not in ("id", "line", "login_id")]
    assert {f: getattr(out, f) for f in fields} == {f: getattr(missing, f) for f in fields}
    assert _errors(out) == {"login_id": ["not_found"]}
    assert User.get_by_id(tree.outside.id).email == "x@example.jp"


@pytest.mark.parametrize("who,found", [
    ("parent_admin", {"user-a", "user-b", "user-p"}),
    ("child_admin", {"user-a"}),
    ("operator", {"user-a", "user-b", "user-p", "user-x"}),
])
def test_each_principal_finds_only_the_users_in_its_scope(tree, tmp_path, who, found):
    principal = _op() if who == "operator" else getattr(tree, who)
    upload = _preview(principal, tmp_path,
                      "login_id,name\r\nuser-a,新\r\nuser-b,新\r\nuser-p,新\r\nuser-x,新\r\n")
    assert {r.current_login_id for r in _rows(upload).values() if r.user_id} == found


def test_helpdesk_cannot_preview_and_an_upload_belongs_to_its_maker(tree, tmp_path):
    with pytest.raises(bulk.NotFound):
        _preview(_op("hd", "helpdesk"), tmp_path, "login_id,name\r\nuser-a,新\r\n")
    upload = _preview(tree.parent_admin, tmp_path, "login_id,name\r\nuser-a,新\r\n")
    other_admin = gen_user(tree.parent, login_id="padmin2", is_admin=True, first_login_done=True)
    for stranger in (other_admin, _op(), tree.child_admin):
        with pytest.raises(bulk.NotFound):
            bulk.get_upload(stranger, upload.id)
        with pytest.raises(bulk.NotFound):
            bulk.apply(stranger, upload.id)
    assert bulk.get_upload(tree.parent_admin, upload.id).id == upload.id
    assert User.get_by_id(tree.a.id).name == "山田 太郎"


def test_the_portal_column_is_needed_only_where_a_login_id_is_in_both_portals_in_scope(tree, tmp_path):
    both_business = gen_user(tree.parent, login_id="same-id", email="sb@example.jp")
    both_sdpf = gen_user(tree.child, login_id="Same-ID", email="ss@example.jp")
    gen_user(tree.other, login_id="only-sdpf-here")  # Business user of another tree
    gen_user(tree.child, login_id="only-sdpf-here")
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,portal,name\r\nsame-id,,新\r\nsame-id,sdpf,新\r\nsame-id, Business ,新\r\n"
                      "only-sdpf-here,,新\r\nuser-a,web,新\r\nuser-a,business,新\r\n")
    rows = _rows(upload)
    assert _errors(rows[2]) == {"portal": ["portal_ambiguous"]}
    assert rows[3].user_id == both_sdpf.id and rows[4].user_id == both_business.id
    assert rows[5].status == "change"  # the Business user of the other tree is out of scope
    assert _errors(rows[6]) == {"portal": ["portal_format"]}
    assert _errors(rows[7]) == {"login_id": ["not_found"]}  # user-a is an SDPF user
    # A child admin sees one portal only: no ambiguity, nothing revealed.
    upload = _preview(tree.child_admin, tmp_path, "login_id,name\r\nsame-id,新\r\n")
    assert _rows(upload)[2].user_id == both_sdpf.id


def test_values_equal_to_the_current_ones_are_unchanged_after_the_consoles_cleaning(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,phone,name,new_email\r\nuser-a,０３-１１１１-２２２２,山田 太郎,\r\n"
                      "user-b,,佐藤 花子,\r\n")
    rows = _rows(upload)
    assert rows[2].status == "unchanged"
    assert rows[3].changes == "name"  # a half-width space instead of the full-width one is a change


def test_a_row_with_more_fields_than_the_header_is_an_error(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path, "login_id,name\r\nuser-a,新,extra\r\nuser-b,新\r\n")
    rows = _rows(upload)
    assert _errors(rows[2]) == {"_row": ["too_many_fields", 3, 2]} and rows[3].status == "change"


def test_rows_page_keyset_paging_and_filters(tree, tmp_path):
    text = "login_id,name\r\n" + "".join(f"nobody{i},x\r\n" if i % 3 == 0 else "user-a,x\r\n"
                                          for i in range(7))
    upload = _preview(tree.parent_admin, tmp_path, text)
    first = bulk.rows_page(upload, size=3)
    assert [r.line for r in first.rows] == [2, 3, 4] and first.next_after == 4 and first.prev_before is None
    second = bulk.rows_page(upload, after=4, size=3)
    assert [r.line for r in second.rows] == [5, 6, 7] and second.prev_before == 5
    back = bulk.rows_page(upload, before=5, size=3)
    assert [r.line for r in back.rows] == [2, 3, 4] and back.prev_before is None and back.next_after == 4
    errors = bulk.rows_page(upload, "error", size=10)
    assert [r.line for r in errors.rows] == [2, 4, 5, 6, 7, 8]  # 3 = the one user-a that counts


# --- apply ------------------------------------------------------------------------------------

def _audit(action=None):
    q = AuditEntry.select().order_by(AuditEntry.id)
    return list(q.where(AuditEntry.action == action) if action else q)


def test_apply_saves_each_row_with_the_consoles_rules_mails_and_audit_entries(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_email,new_login_id,name,phone\r\n"
                      "user-a,new-a@example.jp,user-a-new,高橋\u3000一郎,03-5555-6666\r\n"
                      "user-b,bad-address,,,\r\n"
                      "user-p,,,,0312345678\r\n")
    progress = bulk.apply(tree.parent_admin, upload.id, ip="10.0.0.9")
    assert progress.done and (progress.rows_done, progress.rows_total) == (1, 1)
    a = User.get_by_id(tree.a.id)
    assert (a.email, a.email_key, a.login_id, a.login_id_key, a.name, a.phone) == (
        "new-a@example.jp", "new-a@example.jp", "user-a-new", "user-a-new", "高橋\u3000一郎", "0355556666")
    assert a.version == tree.a.version + 1  # one row, one transaction, one version step
    entries = _audit()
    assert [(e.action, e.old_value, e.new_value) for e in entries] == [
        ("email_changed", "a@example.jp", "new-a@example.jp"),
        ("login_id_changed", "user-a", "user-a-new"),
        ("name_changed", "山田 太郎", "高橋\u3000一郎"),
        ("phone_changed", "0311112222", "0355556666")]
    assert {(e.actor_label, e.ip, e.target_user_id, e.detail) for e in entries} == {
        ("business:padmin", "10.0.0.9", tree.a.id, f"bulk correction {upload.id}, line 2")}
    mails = {(m.kind, m.recipient) for m in Mail.select()}
    assert mails == {("email_changed", "a@example.jp"), ("email_changed", "new-a@example.jp"),
                     ("login_id_changed", "new-a@example.jp")}  # the user, at the new address
    notice = Mail.get(Mail.kind == "login_id_changed")
    assert "user-a-new" in notice.body_text and "user-a" in notice.body_text
    assert User.get_by_id(tree.b.id).email == "b@example.jp"  # the row with an error is skipped
    rows = _rows(upload)
    assert (rows[2].result, rows[3].result, rows[4].result) == ("applied", None, None)
    fresh = BulkUpload.get_by_id(upload.id)
    assert (fresh.state, fresh.rows_applied, fresh.rows_stale, fresh.rows_refused) == ("applied", 1, 0, 0)


def test_a_row_whose_user_changed_since_the_preview_is_refused_as_stale(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,name,new_email\r\nuser-a,プレビューの名前,\r\nuser-b,,b2@example.jp\r\n")
    console.update_field(tree.child_admin, tree.a.id, "phone", "0399990000", tree.a.version)
    bulk.apply(tree.parent_admin, upload.id)
    a = User.get_by_id(tree.a.id)
    assert a.name == "山田 太郎" and a.phone == "0399990000"  # the later edit is not overwritten
    assert User.get_by_id(tree.b.id).email == "b2@example.jp"
    rows = _rows(upload)
    assert (rows[2].result, rows[3].result) == ("stale", "applied")
    assert not AuditEntry.select().where(AuditEntry.action == "name_changed").exists()
    assert BulkUpload.get_by_id(upload.id).rows_stale == 1


def test_a_row_that_breaks_a_rule_since_the_preview_is_refused_with_the_reason(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path, "login_id,new_login_id\r\nuser-a,wanted-id\r\n")
    gen_user(tree.child2, login_id="wanted-id")  # someone took it in the meantime
    bulk.apply(tree.parent_admin, upload.id)
    row = _rows(upload)[2]
    assert (row.result, row.result_detail) == ("refused", "login_id:login_id_taken")
    assert User.get_by_id(tree.a.id).login_id == "user-a"
    assert BulkUpload.get_by_id(upload.id).rows_refused == 1


def test_a_user_gone_since_the_preview_is_not_found_at_apply(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path, "login_id,name\r\nuser-p,新しい名前\r\n")
    User.delete().where(User.id == tree.p.id).execute()
    bulk.apply(tree.parent_admin, upload.id)
    assert _rows(upload)[2].result == "not_found"


def test_the_principals_scope_is_checked_again_at_apply(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path, "login_id,name\r\nuser-b,新しい名前\r\n")
    User.update(is_admin=False).where(User.id == tree.parent_admin.id).execute()
    with pytest.raises(bulk.NotFound):
        bulk.apply(User.get_by_id(tree.parent_admin.id), upload.id)
    assert User.get_by_id(tree.b.id).name == "佐藤\u3000花子"


def test_applying_again_or_uploading_the_same_file_again_changes_nothing(tree, tmp_path):
    text = ("login_id,new_email,new_login_id,name\r\nuser-a,new-a@example.jp,,新しい名前\r\n"
            "user-b,,,花子\r\nuser-p,p2@example.jp,user-p-renamed,\r\n")
    upload = _preview(tree.parent_admin, tmp_path, text)
    bulk.apply(tree.parent_admin, upload.id)
    assert User.get_by_id(tree.p.id).login_id == "user-p-renamed"
    counts = (AuditEntry.select().count(), Mail.select().count())
    versions = {u.id: u.version for u in User.select()}
    assert bulk.apply(tree.parent_admin, upload.id).done
    again = _preview(tree.parent_admin, tmp_path, text)
    # The renamed user is recognised by its new login ID, since the row would change nothing.
    assert (again.rows_change, again.rows_unchanged, again.rows_error) == (0, 3, 0)
    assert _rows(again)[4].user_id == tree.p.id
    bulk.apply(tree.parent_admin, again.id)
    assert (AuditEntry.select().count(), Mail.select().count()) == counts
    assert {u.id: u.version for u in User.select()} == versions


def test_a_row_naming_a_user_by_a_new_login_id_is_not_found_when_it_would_change_something(
        tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_login_id,name\r\nold-name,user-b,別の名前\r\n"
                      "old-name2,user-b,\r\n")
    rows = _rows(upload)
    assert _errors(rows[2]) == {"login_id": ["not_found"]} and rows[2].user_id is None
    assert rows[3].status == "unchanged" and rows[3].user_id == tree.b.id


def test_apply_in_time_boxed_steps_resumes_and_applies_each_row_once(tree, tmp_path):
    users = [gen_user(tree.child, login_id=f"many{i}") for i in range(5)]
    upload = _preview(tree.child_admin, tmp_path,
                      "login_id,name\r\n" + "".join(f"{u.login_id},名前{i}\r\n" for i, u in enumerate(users)))
    steps = []
    while True:
        progress = bulk.apply(tree.child_admin, upload.id, budget_seconds=0)
        steps.append(progress.rows_done)
        if progress.done:
            break
        assert BulkUpload.get_by_id(upload.id).state == "applying"
    assert steps == [1, 2, 3, 4, 5]  # the step that applies the last row says it is done
    assert [User.get_by_id(u.id).name for u in users] == [f"名前{i}" for i in range(5)]
    assert AuditEntry.select().count() == 5


def test_a_row_claimed_by_a_concurrent_apply_is_not_applied_twice(tree, tmp_path):
    upload = _preview(tree.parent_admin, tmp_path, "login_id,name\r\nuser-a,新しい名前\r\n")
    row = _rows(upload)[2]
    assert bulk._apply_row(tree.parent_admin, upload, row, None) == "applied"
    assert bulk._apply_row(tree.parent_admin, upload, row, None) is None  # the second one rolls back
    assert AuditEntry.select().count() == 1 and Mail.select().count() == 0
    assert _rows(upload)[2].result == "applied"
    assert bulk.apply(tree.parent_admin, upload.id).done
    assert BulkUpload.get_by_id(upload.id).rows_applied == 1


def test_a_row_that_fails_midway_leaves_nothing_half_written_and_is_retried(tree, tmp_path, monkeypatch):
    from accounts import outbox

    upload = _preview(tree.parent_admin, tmp_path,
                      "login_id,new_email\r\nuser-a,a2@example.jp\r\nuser-b,b2@example.jp\r\n")
    real = outbox.render_and_enqueue

    def broken(template, **kw):
        if kw["recipient"] == "b2@example.jp":
            raise RuntimeError("mail template broken")
        return real(template, **kw)

    monkeypatch.setattr(outbox, "render_and_enqueue", broken)
    with pytest.raises(RuntimeError):
        bulk.apply(tree.parent_admin, upload.id)
    assert User.get_by_id(tree.a.id).email == "a2@example.jp"   # the row before stays applied
    b = User.get_by_id(tree.b.id)
    assert b.email == "b@example.jp" and b.version == tree.b.version
    assert not Mail.select().where(Mail.user == tree.b.id).exists()
    assert not AuditEntry.select().where(AuditEntry.target_user == tree.b.id).exists()
    assert _rows(upload)[3].result is None
    monkeypatch.setattr(outbox, "render_and_enqueue", real)
    assert bulk.apply(tree.parent_admin, upload.id).done
    assert User.get_by_id(tree.b.id).email == "b2@example.jp"
    assert Mail.select().where(Mail.user == tree.b.id).count() == 2


def test_corrections_are_allowed_before_the_migration_period_as_in_the_console(tree, tmp_path):
    period.set_period(utcnow() + datetime.timedelta(days=5), utcnow() + datetime.timedelta(days=60))
    migrated = gen_user(tree.child, login_id="migrated", legacy=True, legacy_login_id="migrated")
    upload = _preview(tree.child_admin, tmp_path, "login_id,new_email\r\nmigrated,m2@example.jp\r\n")
    bulk.apply(tree.child_admin, upload.id)
    assert User.get_by_id(migrated.id).email == "m2@example.jp"
    assert Mail.select().where(Mail.kind == "email_changed").count() == 2
