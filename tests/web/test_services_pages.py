"""Services imported with `flask import-services` as users and staff see them (SPEC 12): the status
text from the file, as is, on both portals' dashboards and on the console's contract page."""
import html as html_lib

from tests.helpers import gen_contract, gen_user
from tests.web.admin_helpers import make_world, sign_in


def _import(runner, tmp_path, rows):
    path = tmp_path / "services.csv"
    path.write_text("contract_ecid,service,status\r\n" + "".join(f"{r}\r\n" for r in rows), encoding="utf-8")
    result = runner.invoke(args=["import-services", str(path)])
    assert result.exit_code == 0, result.output
    return result


def test_both_dashboards_show_the_imported_status_text_in_japanese(client, runner, db, tmp_path):
    parent = gen_contract(ecid="ecid1000000001", name="親契約")
    child = gen_contract(parent=parent, ecid="ecid1000000002", name="子契約")
    business = gen_user(parent, login_id="biz", first_login_done=True)
    sdpf = gen_user(child, login_id="sdpf", first_login_done=True)
    _import(runner, tmp_path, ["ecid1000000001,Smart Data Platform,お申し込み済み",
                               "ecid1000000001,Flexible InterConnect,ご利用中（2026年12月開通）",
                               "ECID1000000002,Smart Data Platform,手続き中"])
    sign_in(client, business)
    page = client.get("/business/dashboard").get_data(as_text=True)
    assert "Smart Data Platform" in page and "お申し込み済み" in page
    assert "Flexible InterConnect" in page and "ご利用中（2026年12月開通）" in page
    assert "手続き中" not in page  # the child contract's service is not the parent's
    sign_in(client, sdpf)
    page = client.get("/sdpf/dashboard").get_data(as_text=True)
    assert "Smart Data Platform" in page and "手続き中" in page and "ご利用中" not in page

    # The status is the file's text: shown as is in English too, and updated by a later file.
    _import(runner, tmp_path, ["ecid1000000002,Smart Data Platform,ご利用中"])
    client.set_cookie("lang", "en")
    page = client.get("/sdpf/dashboard").get_data(as_text=True)
    assert "ご利用中" in page and "手続き中" not in page


def test_a_service_and_status_holding_markup_are_escaped_on_the_dashboard_and_the_console(
        client, runner, tmp_path):
    w = make_world()
    _import(runner, tmp_path, [f'{w.parent.ecid},"<script>alert(1)</script>","<b>済</b>"'])
    for who, url in ((w.parent_admin, "/business/dashboard"),
                     (w.operator, f"/admin/contracts/{w.parent.ecid}")):
        sign_in(client, who)
        page = client.get(url).get_data(as_text=True)
        assert "<b>済</b>" not in page and html_lib.escape("<b>済</b>") in page, url
        assert "<script>alert(1)</script>" not in page and html_lib.escape("<script>alert(1)") in page, url


def test_the_console_contract_page_lists_the_imported_services_with_their_status(client, runner, tmp_path):
    w = make_world()
    _import(runner, tmp_path, [f"{w.child.ecid},Smart Data Platform,お申し込み済み",
                               f"{w.child.ecid},Flexible InterConnect,解約済み",
                               f"{w.parent.ecid},Smart Data Platform,手続き中"])
    for who in (w.operator, w.helpdesk, w.parent_admin, w.child_admin):
        sign_in(client, who)
        page = client.get(f"/admin/contracts/{w.child.ecid}").get_data(as_text=True)
        services = page.split('id="contract-services"', 1)[1].split("</ul>", 1)[0]
        assert "Flexible InterConnect" in services and "解約済み" in services, who
        assert "Smart Data Platform" in services and "お申し込み済み" in services, who
        assert "手続き中" not in services, who
