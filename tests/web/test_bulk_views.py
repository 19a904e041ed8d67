"""The console's 「一括修正」 through the test client: every refused file in both languages, the
preview (errors next to cells, htmx paging, CSV), the apply with and without JavaScript."""
import io
import re

import pytest

from accounts.models import AuditEntry, BulkRow, BulkUpload, Mail, User
from tests.helpers import csrf_token, gen_user
from tests.web.admin_helpers import make_world, sign_in

pytestmark = pytest.mark.usefixtures("db")

HX = {"HX-Request": "true"}
BOM = "\ufeff"


def _token(client):
    return csrf_token(client.get("/admin/bulk").get_data(as_text=True))


def _upload(client, content, name="fix.csv", token=None, headers=None):
    """POST a file as a browser does (multipart). The body is encoded here, in memory: the test
    client would spool a large one to a temporary file that it never closes."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    data = {"file": FileStorage(io.BytesIO(content), name, content_type="text/csv")}
    if token is not False:
        data["csrf_token"] = token or _token(client)
    boundary, body = encode_multipart(data)
    return client.post("/admin/bulk", data=body, headers=headers or {},
                       content_type=f"multipart/form-data; boundary={boundary}")


def _nothing_written():
    return BulkUpload.select().count() == 0 and BulkRow.select().count() == 0


@pytest.fixture
def world(client):
    w = make_world()
    sign_in(client, w.parent_admin)
    return w


def test_the_page_offers_the_template_and_an_upload_form_that_works_without_javascript(client, world):
    html = client.get("/admin/bulk").get_data(as_text=True)
    assert "<h1>一括修正</h1>" in html
    assert 'aria-current="page">一括修正</a>' in html  # the console's navigation
    form = re.search(r'<form method="post" action="/admin/bulk" enctype="multipart/form-data">', html)
    assert form and 'name="csrf_token"' in html and 'type="file"' in html
    template = client.get("/admin/bulk/template.csv")
    assert template.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert template.get_data(as_text=True) == BOM + "login_id,new_email,new_login_id,name,phone,portal\r\n"


def test_helpdesk_has_no_bulk_corrections(client, world):
    sign_in(client, world.helpdesk)
    assert "/admin/bulk" not in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/bulk").status_code == 404


BAD_FILES = {
    "not_csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png",
                "CSVとして読み込めません", "cannot be read as CSV"),
    "xlsx": (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml", "fix.xlsx",
             "CSVとして読み込めません", "cannot be read as CSV"),
    "no_login_id": (b"email,name\r\ntarget-child,x\r\n", "fix.csv",
                    "見出し行に login_id 列がありません", "The header has no login_id column"),
    "empty": (b"", "fix.csv", "ファイルが空です", "The file is empty"),
    "header_only": (b"login_id,name\r\n", "fix.csv", "見出し行しかありません", "a header but no rows"),
    "unknown_columns": (b"login_id,name,password\r\ntarget-child,x,y\r\n", "fix.csv",
                        "使えない列があります: password", "Unknown column(s) in the header: password"),
    "too_large": (b"login_id,name\r\n" + b"x" * (10 * 1024 * 1024), "big.csv",
                  "10 MBを超えています", "larger than 10 MB"),
    "too_many_rows": (b"login_id,name\r\n" + b"".join(b"u%d,x\r\n" % i for i in range(50001)),
                      "many.csv", "50000行を超えています", "more than 50000 rows"),
}


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_gets_one_clear_message_in_the_users_language_and_nothing_is_written(
        client, world, case, lang):
    content, name, ja, en = BAD_FILES[case]
    client.set_cookie("lang", lang)
    r = _upload(client, content, name)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert (ja if lang == "ja" else en) in html
    assert html.count('class="error"') == 1 and 'aria-invalid="true"' in html
    assert _nothing_written()


@pytest.mark.parametrize("lang,text", [("ja", "アップロードするCSVファイルを選んでください"),
                                       ("en", "Choose a CSV file to upload")])
def test_no_file_chosen(client, world, lang, text):
    client.set_cookie("lang", lang)
    r = client.post("/admin/bulk", data={"csrf_token": _token(client)})
    assert r.status_code == 422 and text in r.get_data(as_text=True) and _nothing_written()


@pytest.mark.parametrize("lang,text", [("ja", "10 MBを超えています"), ("en", "larger than 10 MB")])
def test_a_body_over_the_applications_limit_gets_the_same_message(make_app, lang, text):
    app = make_app(MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    client = app.test_client()
    w = make_world()
    sign_in(client, w.parent_admin)
    client.set_cookie("lang", lang)
    r = _upload(client, b"login_id,name\r\n" + b"x" * (3 * 1024 * 1024))
    assert r.status_code == 413 and text in r.get_data(as_text=True) and _nothing_written()
    # Elsewhere in the console an oversized body stays a plain 413.
    r = client.post("/admin/progress/ecid1000000002/remind", data=b"x" * (3 * 1024 * 1024),
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413 and text not in r.get_data(as_text=True)


def test_an_upload_without_the_csrf_token_is_refused(client, world):
    r = _upload(client, b"login_id,name\r\ntarget-child,x\r\n", token=False)
    assert r.status_code == 400 and _nothing_written()


def _preview_url(client, content):
    r = _upload(client, content)
    assert r.status_code == 303, r.get_data(as_text=True)
    return r.headers["Location"]


def test_the_preview_marks_changes_and_puts_each_error_next_to_its_cell(client, world):
    url = _preview_url(client, (
        "login_id,new_email,name,phone\r\n"
        "target-child,new@example.jp,,03-9999-0000\r\n"
        "target-other,x@example.jp,,\r\n"      # another partner's user: not found
        "nobody,,名前,\r\n"                     # missing: the same message
        "target-parent,bad-address,,\r\n"
        "target-child,,別の名前,\r\n").encode("cp932"))
    html = client.get(url).get_data(as_text=True)
    assert "変更あり: <strong>1</strong>" in html and "エラー: <strong>4</strong>" in html
    row = re.search(r'<tr class="bulk-change" id="line-2">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r"<del>.*tc@example.jp</del>\s*<ins>.*new@example.jp</ins>", row, re.S)
    assert re.search(r"<del>.*0312345678</del>\s*<ins>.*0399990000</ins>", row, re.S)
    for line in (3, 4):
        cell = re.search(rf'id="line-{line}">(.*?)</tr>', html, re.S).group(1)
        assert "このログインIDのユーザーは見つかりません。" in cell
    assert 'id="line-3"' in html and "to@example.jp" not in html  # nothing of the other tree shown
    bad = re.search(r'id="line-5">(.*?)</tr>', html, re.S).group(1)
    assert re.search(r'<td class="has-error">\s*<span class="given">bad-address</span><p class="error">'
                     r"name@example.jp のような形式", bad)
    assert "2行目と重複しています" in re.search(r'id="line-6">(.*?)</tr>', html, re.S).group(1)
    assert '<button type="submit">1件の変更を適用</button>' in html
    assert User.get_by_id(world.target_child.id).email == "tc@example.jp"


def test_the_preview_pages_with_htmx_and_the_url_keeps_the_page(client, world):
    users = [gen_user(world.child, login_id=f"bulk{i:03d}") for i in range(120)]
    url = _preview_url(client, ("login_id,name\r\n" + "".join(f"{u.login_id},新しい名前\r\n" for u in users))
                       .encode())
    first = client.get(url).get_data(as_text=True)
    assert 'id="line-51"' in first and 'id="line-52"' not in first
    next_link = re.search(r'hx-get="([^"]*after=51[^"]*)" hx-target="#bulk-rows" hx-push-url="true"', first)
    assert next_link
    fragment = client.get(next_link.group(1).replace("&amp;", "&"), headers=HX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "Vary" in fragment.headers and "HX-Request" in fragment.headers["Vary"]
    assert 'id="line-52"' in body and 'id="line-101"' in body and 'id="line-102"' not in body
    full = client.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)  # a reload
    assert "<html" in full and 'id="line-52"' in full and 'id="line-51"' not in full
    back = re.search(r'href="([^"]*before=52[^"]*)"', body).group(1).replace("&amp;", "&")
    assert 'id="line-2"' in client.get(back, headers=HX).get_data(as_text=True)


def test_the_preview_filters_rows_and_downloads_as_csv(client, world):
    url = _preview_url(client, b"login_id,name,phone\r\ntarget-child,=HYPERLINK(\"x\"),\r\nnobody,x,\r\n"
                       b"target-parent,,03-1234-5678\r\n")
    errors_only = client.get(url + "?show=error", headers=HX).get_data(as_text=True)
    assert 'id="line-3"' in errors_only and 'id="line-2"' not in errors_only
    csv = client.get(url + "/report.csv")
    text = csv.get_data(as_text=True)
    assert csv.headers["Content-Type"] == "text/csv; charset=utf-8" and text.startswith(BOM)
    lines = text[1:].split("\r\n")
    assert lines[0] == ("line,login_id,portal,current_email,new_email,current_login_id,new_login_id,"
                        "current_name,new_name,current_phone,new_phone,status,changes,errors,result,"
                        "result_message,applied_at_jst")
    assert lines[1].startswith("2,target-child,,tc@example.jp,,target-child,,佐藤\u3000一郎,"
                               "\"'=HYPERLINK(\"\"x\"\")\",")  # a formula is quoted as text
    assert lines[2] == "3,nobody,,,,,,,x,,,error,,ログインID: このログインIDのユーザーは見つかりません。,,,"
    assert lines[3].startswith("4,target-parent,,tp@example.jp,,target-parent,,山田 太郎,,0312345678,"
                               "0312345678,unchanged,")


def test_apply_without_javascript_then_the_report_stays_on_the_page(client, world):
    url = _preview_url(client, b"login_id,new_email\r\ntarget-child,new@example.jp\r\n"
                               b"nobody,x@example.jp\r\n")
    upload_id = int(url.rsplit("/", 1)[1])
    token = csrf_token(client.get(url).get_data(as_text=True))
    assert client.get(url + "/apply").status_code == 405
    assert client.head(url + "/apply", data={"csrf_token": token}).status_code == 405
    r = client.post(url + "/apply", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"] == url
    html = client.get(url).get_data(as_text=True)
    assert "適用しました: 1件を変更" in html and "結果をダウンロード(CSV)" in html
    assert "修正済み" in re.search(r'id="line-2">(.*?)</tr>', html, re.S).group(1)
    assert {m.recipient for m in Mail.select()} == {"tc@example.jp", "new@example.jp"}
    report = client.get(url + "/report.csv").get_data(as_text=True).split("\r\n")
    assert ",applied,修正済み," in report[1] and report[2].endswith(",error,,ログインID: "
                                                               "このログインIDのユーザーは見つかりません。,,,")
    counts = (AuditEntry.select().count(), Mail.select().count())
    assert client.post(url + "/apply", data={"csrf_token": token}).status_code == 303
    assert (AuditEntry.select().count(), Mail.select().count()) == counts
    assert BulkUpload.get_by_id(upload_id).state == "applied"
    assert f"bulk/{upload_id}" in client.get("/admin/bulk").get_data(as_text=True)  # in the list


def test_apply_with_htmx_continues_in_time_boxed_steps_until_done(app, client, world):
    app.config["BULK_APPLY_SECONDS"] = 0  # one row per request
    users = [gen_user(world.child, login_id=f"step{i}") for i in range(3)]
    url = _preview_url(client, ("login_id,name\r\n" + "".join(f"{u.login_id},新{i}\r\n"
                                                               for i, u in enumerate(users))).encode())
    token = csrf_token(client.get(url).get_data(as_text=True))
    answers = []
    for _ in range(5):
        r = client.post(url + "/apply", data={"csrf_token": token}, headers=HX)
        assert r.status_code == 200
        if "HX-Redirect" in r.headers:
            assert r.headers["HX-Redirect"] == url
            break
        body = r.get_data(as_text=True)
        assert body.lstrip().startswith('<section id="bulk-status"') and 'hx-trigger="load, submit"' in body
        answers.append(re.search(r"3件中(\d)件を処理しました", body).group(1))
    assert answers == ["1", "2"]
    assert [User.get_by_id(u.id).name for u in users] == ["新0", "新1", "新2"]
    # A reload in the middle shows the progress and a button to continue (no automatic POST).
    assert 'hx-trigger="load' not in client.get(url).get_data(as_text=True)


def test_the_page_of_the_preview_reads_in_english(client, world):
    client.set_cookie("lang", "en")
    url = _preview_url(client, b"login_id,portal,name\r\ntarget-child,web,x\r\n")
    html = client.get(url).get_data(as_text=True)
    assert "Enter business or sdpf, or leave it blank." in html and "Nothing to apply" in html


def test_someone_elses_upload_is_not_found(client, world):
    url = _preview_url(client, b"login_id,name\r\ntarget-child,x\r\n")
    other = gen_user(world.parent, login_id="padmin2", is_admin=True, first_login_done=True)
    sign_in(client, other)
    assert client.get(url).status_code == 404
    assert client.get(url + "/report.csv").status_code == 404
    assert client.post(url + "/apply", data={"csrf_token": _token(client)}).status_code == 404
    assert User.get_by_id(world.target_child.id).name == "佐藤\u3000一郎"
