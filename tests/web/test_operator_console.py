"""The operator's console pages through the test client (SPEC 12): terms, contracts, staff, the period
rules on the console's buttons, the legacy pop-up's name and phone, SDPF help, the footer.
(Every new route as every role, in and out of scope: tests/web/test_admin_route_walk.py.)"""
import datetime

import pytest
import time_machine

from accounts import period, site, terms
from accounts.clock import utcnow
from accounts.models import AuditEntry, Contract, Mail, MigrationPeriod, Staff, TermsVersion, User
from tests.helpers import Statements, csrf_token, gen_contract, gen_user
from tests.legacy_helpers import BEFORE_AT, DURING_AT, PASSWORD, gen_legacy, set_period
from tests.web.admin_helpers import make_world, sign_in

pytestmark = pytest.mark.usefixtures("db")


def _token(client, path="/admin/"):
    return csrf_token(client.get(path).get_data(as_text=True))


# --- terms ----------------------------------------------------------------------------------------

def test_operator_is_warned_while_no_terms_version_is_in_force_and_others_are_not(client):
    w = make_world()
    sign_in(client, w.operator)
    assert 'id="terms-missing"' in client.get("/admin/").get_data(as_text=True)
    sign_in(client, w.helpdesk)
    assert 'id="terms-missing"' not in client.get("/admin/").get_data(as_text=True)
    terms.publish("第1版", "本文", actor="cli")
    sign_in(client, w.operator)
    assert 'id="terms-missing"' not in client.get("/admin/").get_data(as_text=True)


def test_operator_previews_and_publishes_terms_from_the_form(client):
    w = make_world()
    sign_in(client, w.operator)
    token = _token(client, "/admin/terms")
    body = "# 第1条\n本規約は<b>太字</b>ではありません"
    r = client.post("/admin/terms/preview", data={"csrf_token": token, "title": "第1版", "body": body},
                    headers={"HX-Request": "true"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and html.lstrip().startswith('<div id="terms-preview"')
    assert "<h3>第1条</h3>" in html and "&lt;b&gt;太字&lt;/b&gt;" in html
    assert TermsVersion.select().count() == 0  # a preview writes nothing
    r = client.post("/admin/terms", data={"csrf_token": token, "title": "", "body": " ", "at": "someday"})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "タイトルを入力してください" in html and "規約の本文を入力してください" in html
    r = client.post("/admin/terms", data={"csrf_token": token, "title": "第1版", "body": body, "at": ""})
    assert r.status_code == 303
    v = TermsVersion.get()
    assert v.version == 1 and v.published_by == "op"
    AuditEntry.get((AuditEntry.action == "terms_published") & (AuditEntry.actor_label == "staff:op"))
    page = client.get("/admin/terms").get_data(as_text=True)
    assert "第1版" in page and "0 名" in page and "適用中" in page
    shown = client.get("/admin/terms/1").get_data(as_text=True)
    assert "&lt;b&gt;太字&lt;/b&gt;" in shown
    assert client.get("/admin/terms/2").status_code == 404


# --- contracts ------------------------------------------------------------------------------------

def test_contract_search_answers_a_fragment_to_htmx_and_a_page_otherwise(client):
    w = make_world()
    sign_in(client, w.helpdesk)
    page = client.get("/admin/contracts?q=親契約").get_data(as_text=True)
    assert "<html" in page and "ecid1000000001" in page and "ecid2000000001" in page
    frag = client.get("/admin/contracts?q=ecid2", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in frag and "ecid2000000001" in frag and "ecid1000000001" not in frag


def test_contract_page_shows_tree_admins_users_link_and_services_read_only_for_a_parent_admin(client):
    from accounts.models import Service

    w = make_world()
    Service.create(contract=w.child, name="Smart Data Platform")
    sign_in(client, w.parent_admin)
    html = client.get(f"/admin/contracts/{w.child.ecid}").get_data(as_text=True)
    assert "親契約A" in html and f'/admin/contracts/{w.parent.ecid}"' in html
    assert "cadmin" in html and "Smart Data Platform" in html
    assert f"/admin/?contract={w.child.ecid}" in html
    assert 'name="name"' not in html and "管理者権限を付与" not in html  # read-only
    parent = client.get(f"/admin/contracts/{w.parent.ecid}").get_data(as_text=True)
    assert w.child.ecid in parent and w.other_child.ecid not in parent


def test_child_admin_sees_the_partner_by_name_without_a_link(client):
    w = make_world()
    sign_in(client, w.child_admin)
    html = client.get(f"/admin/contracts/{w.child.ecid}").get_data(as_text=True)
    assert "親契約A" in html and f'/admin/contracts/{w.parent.ecid}"' not in html
    assert client.get(f"/admin/contracts/{w.parent.ecid}").status_code == 404


def test_operator_renames_grants_and_revokes_with_mails_and_audit(client):
    w = make_world()
    sign_in(client, w.operator)
    token = _token(client, f"/admin/contracts/{w.child.ecid}")
    r = client.post(f"/admin/contracts/{w.child.ecid}/name", data={"csrf_token": token, "name": ""})
    assert r.status_code == 422 and "値を入力してください" in r.get_data(as_text=True)
    r = client.post(f"/admin/contracts/{w.child.ecid}/name", data={"csrf_token": token, "name": "みどり商事"})
    assert r.status_code == 303 and Contract.get_by_id(w.child.id).name == "みどり商事"
    grant = f"/admin/contracts/{w.child.ecid}/admins"
    r = client.post(grant, data={"csrf_token": token, "login_id": "nobody"})
    assert r.status_code == 422 and "この契約にこのログインIDのユーザーはいません" in r.get_data(as_text=True)
    r = client.post(grant, data={"csrf_token": token, "login_id": "plain"})
    assert r.status_code == 303 and User.get_by_id(w.plain.id).is_admin
    confirm = client.get(f"/admin/contracts/{w.child.ecid}/admins/{w.plain.id}/revoke").get_data(as_text=True)
    assert "はい、管理者権限を外します" in confirm and User.get_by_id(w.plain.id).is_admin
    r = client.post(f"/admin/contracts/{w.child.ecid}/admins/{w.plain.id}/revoke", data={"csrf_token": token})
    assert r.status_code == 303 and not User.get_by_id(w.plain.id).is_admin
    assert Mail.select().where((Mail.kind == "admin_role") & (Mail.user == w.plain.id)).count() == 2
    actions = {e.action for e in AuditEntry.select()}
    assert {"contract_renamed", "admin_granted", "admin_revoked"} <= actions


def test_a_contract_without_an_admin_says_so(client):
    w = make_world()
    lonely = gen_contract(name="管理者なし")
    gen_user(lonely)
    sign_in(client, w.operator)
    html = client.get(f"/admin/contracts/{lonely.ecid}").get_data(as_text=True)
    assert "この契約には管理者がいません" in html


# --- staff ----------------------------------------------------------------------------------------

def test_staff_page_lists_accounts_and_applies_actions_with_confirmation(client):
    w = make_world()
    Staff.update(totp_confirmed_at=utcnow(), totp_secret="S" * 32).where(Staff.id == w.helpdesk.id).execute()
    sign_in(client, w.operator)
    html = client.get("/admin/staff").get_data(as_text=True)
    assert "hd" in html and "（あなた）" not in html and "(あなた)" in html
    assert f"/admin/staff/{w.operator.id}/disable" not in html  # no button to disable oneself
    token = _token(client, "/admin/staff")
    assert "TOTPをリセット" in client.get(f"/admin/staff/{w.helpdesk.id}/reset_totp").get_data(as_text=True)
    assert Staff.get_by_id(w.helpdesk.id).totp_confirmed_at is not None  # GET changes nothing
    r = client.post(f"/admin/staff/{w.helpdesk.id}/reset_totp", data={"csrf_token": token})
    assert r.status_code == 303 and Staff.get_by_id(w.helpdesk.id).totp_confirmed_at is None
    client.post(f"/admin/staff/{w.helpdesk.id}/disable", data={"csrf_token": token})
    assert Staff.get_by_id(w.helpdesk.id).disabled
    r = client.post(f"/admin/staff/{w.operator.id}/disable", data={"csrf_token": token})
    assert r.status_code == 303 and not Staff.get_by_id(w.operator.id).disabled
    assert "ご自身のアカウントは無効化できません" in client.get("/admin/staff").get_data(as_text=True)
    r = client.post(f"/admin/staff/{w.helpdesk.id}/nonsense", data={"csrf_token": token})
    assert r.status_code == 404


def test_a_disabled_staff_member_is_signed_out_at_the_next_request(client):
    w = make_world()
    sign_in(client, w.helpdesk)
    assert client.get("/admin/").status_code == 200
    Staff.update(disabled=True).where(Staff.id == w.helpdesk.id).execute()
    assert client.get("/admin/").status_code == 302


# --- period rules on the console's buttons -----------------------------------------------------------

def test_before_the_period_the_reset_button_is_disabled_with_the_date_and_the_post_is_refused(client):
    set_period()
    w = make_world()
    with time_machine.travel(BEFORE_AT, tick=False):
        sign_in(client, w.operator)  # a session started then (sessions expire when idle)
        page = client.get(f"/admin/users/{w.target_child.id}").get_data(as_text=True)
        assert 'aria-describedby="reset-opens"' in page and "2026-12-01 00:00 JST" in page
        confirm = client.get(f"/admin/users/{w.target_child.id}/reset-link").get_data(as_text=True)
        after_refusal = confirm.split('id="refused"')[1].split("</div>")[0]
        assert "<button" not in after_refusal
        r = client.post(f"/admin/users/{w.target_child.id}/reset-link", data={"csrf_token": _token(client)})
        assert r.status_code == 303
        assert "2026-12-01 00:00 JST" in client.get(r.headers["Location"]).get_data(as_text=True)
        native = client.get(f"/admin/users/{w.target_parent.id}").get_data(as_text=True)
        assert 'id="reset-opens"' not in native
    assert Mail.select().count() == 0
    with time_machine.travel(DURING_AT, tick=False):
        sign_in(client, w.operator)  # days later: a new session
        page = client.get(f"/admin/users/{w.target_child.id}").get_data(as_text=True)
        assert 'id="reset-opens"' not in page
        client.post(f"/admin/users/{w.target_child.id}/reset-link", data={"csrf_token": _token(client)})
    assert Mail.select().where(Mail.kind == "reset").count() == 1


def test_before_the_period_reminders_to_migrated_users_are_refused(client):
    set_period()
    w = make_world()
    with time_machine.travel(BEFORE_AT, tick=False):
        sign_in(client, w.parent_admin)  # a session started then (sessions expire when idle)
        html = client.get(f"/admin/progress/{w.child.ecid}").get_data(as_text=True)
        assert 'id="remind-opens"' in html and f'value="{w.target_child.id}"' in html
        assert f'id="sel-{w.target_child.id}" aria-label' in html and "disabled>" in html
        r = client.post(f"/admin/progress/{w.child.ecid}/remind",
                        data={"csrf_token": _token(client), "user": [str(w.target_child.id)]})
        assert r.status_code == 303
        assert "2026-12-01 00:00 JST" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert Mail.select().count() == 0


# --- legacy pop-up: Business users correct name and phone --------------------------------------------

def _legacy_signin(client, login_id):
    token = csrf_token(client.get("/legacy/").get_data(as_text=True))
    return client.post("/legacy/signin",
                       data={"login_id": login_id, "password": PASSWORD, "csrf_token": token})


def test_business_users_correct_name_and_phone_in_the_popup_with_the_consoles_validation(client):
    set_period()
    user = gen_user(contract=gen_contract(), login_id="biz@example.jp", legacy=True,
                    legacy_login_id="biz@example.jp", name="佐藤 一郎", phone="0312345678",
                    legacy_phone="03-ｱｲｳ")
    gen_legacy(user=user)
    with time_machine.travel(DURING_AT, tick=False):
        _legacy_signin(client, "biz@example.jp")
        edit = client.get("/legacy/identity?edit=1").get_data(as_text=True)
        assert 'id="f-name"' in edit and 'id="f-phone"' in edit and "03-ｱｲｳ" in edit
        token = csrf_token(edit)
        base = {"csrf_token": token, "email": user.email, "login_id": user.login_id}
        r = client.post("/legacy/identity", data={**base, "name": " 佐藤 一郎", "phone": "03-12"})
        html = r.get_data(as_text=True)
        assert r.status_code == 400
        assert "名前の先頭と末尾にスペース" in html or "スペース" in html
        assert User.get_by_id(user.id).name == "佐藤 一郎" and Mail.select().count() == 0
        r = client.post("/legacy/identity", data={**base, "name": "佐藤\u3000一郎", "phone": "090-1111-2222"})
        assert r.status_code == 303
    fresh = User.get_by_id(user.id)
    assert fresh.name == "佐藤\u3000一郎" and fresh.phone == "09011112222"
    fields = {e.field: (e.old_value, e.new_value) for e in
              AuditEntry.select().where(AuditEntry.action == "legacy_popup_corrected")}
    assert fields == {"name": ("佐藤 一郎", "佐藤\u3000一郎"), "phone": ("0312345678", "09011112222")}


def test_sdpf_users_cannot_change_name_or_phone_through_the_popup(client):
    set_period()
    user = gen_user(contract=gen_contract(parent=gen_contract()), login_id="child", legacy=True,
                    legacy_login_id="child", name="田中 三郎", phone="")
    gen_legacy(user=user)
    with time_machine.travel(DURING_AT, tick=False):
        _legacy_signin(client, "child")
        edit = client.get("/legacy/identity?edit=1").get_data(as_text=True)
        assert 'id="f-name"' not in edit
        client.post("/legacy/identity", data={"csrf_token": csrf_token(edit), "email": user.email,
                                              "login_id": "child", "name": "別人", "phone": "0311112222"})
    assert User.get_by_id(user.id).name == "田中 三郎" and User.get_by_id(user.id).phone == ""


# --- SDPF help, footer --------------------------------------------------------------------------------

def test_sdpf_pages_send_users_to_their_admin_and_partner_not_the_business_faq(make_app):
    app = make_app(FAQ_URL="https://biz.example/faq", FAQ_URL_SDPF=None)
    client = app.test_client()
    sdpf = client.get("/sdpf/password/reset").get_data(as_text=True)
    assert "https://biz.example/faq" not in sdpf and "パートナー" in sdpf
    assert "https://biz.example/faq" in client.get("/business/password/reset").get_data(as_text=True)
    app = make_app(FAQ_URL="https://biz.example/faq", FAQ_URL_SDPF="https://sdpf.example/faq")
    assert "https://sdpf.example/faq" in app.test_client().get("/sdpf/password/reset").get_data(as_text=True)


def test_sdpf_dashboard_names_the_administrator_and_the_partner(client):
    w = make_world()
    sign_in(client, w.plain)
    r = client.get("/sdpf/dashboard")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'id="help-contacts"' in html and "親契約A" in html and "山田 太郎" in html


def test_footer_names_the_operator_and_says_demo_only_when_the_demo_data_is_loaded(make_app):
    app = make_app(SITE_OPERATOR_NAME="Example Telecom")
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    assert "© Example Telecom" in html and "（デモ）" not in html and "(demo)" not in html
    site.mark_demo_loaded()
    assert "© Example Telecom （デモ）" in client.get("/").get_data(as_text=True)


def test_site_facts_read_the_period_and_the_demo_flag_together(db):
    assert site.facts() == site.Facts(None, False)
    start, end = datetime.datetime(2026, 12, 1, 0, 0), datetime.datetime(2027, 3, 31, 14, 59)
    MigrationPeriod.create(id=1, start_at=start, end_at=end)
    site.mark_demo_loaded()
    assert site.facts() == site.Facts(period.Period(start, end), True)
    assert site.facts().period == period.current()


def test_the_demo_command_records_that_the_demo_is_loaded(runner):
    assert not site.demo_loaded()
    assert runner.invoke(args=["demo"]).exit_code == 0
    assert site.demo_loaded()


def test_terms_counters_count_real_acceptances(client):
    v = terms.publish("第1版", "本文", actor="cli", at=utcnow() - datetime.timedelta(minutes=1))
    for _ in range(3):
        terms.accept(gen_user(), v)
    assert TermsVersion.get_by_id(v.id).accepted_count == 3


# --- the site's facts kept between requests (PostgreSQL) ------------------------------------------

def _reads(fn) -> int:
    """How many statements ``fn`` sends."""
    with Statements() as seen:
        fn()
    return len(seen)


def test_site_facts_are_read_again_only_after_the_database_says_they_changed(db):
    """On PostgreSQL a page's facts cost no round trip until a change is notified (the trigger of
    migrations/0012), whoever makes it: another connection (a command, another worker) included.
    SQLite reads them every time (in the process)."""
    import psycopg

    from accounts import health
    from accounts.db import database, is_postgres

    site.facts()
    assert _reads(site.facts) == (0 if is_postgres() else 1)
    start, end = datetime.datetime(2026, 12, 1, 0, 0), datetime.datetime(2027, 3, 31, 14, 59)
    period.set_period(start, end)                      # this connection: seen at once
    assert site.facts().period == period.Period(start, end)
    if not is_postgres():
        return
    other = psycopg.connect(database.connection().info.dsn, autocommit=True)
    try:
        other.execute('UPDATE "migration_period" SET "end_at" = %s', (end + datetime.timedelta(days=1),))
        other.execute('INSERT INTO "site_setting" ("key", "value", "updated_at") VALUES (%s, %s, now())',
                      (site.DEMO_LOADED, "x"))
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
        while health.connection_alive() and datetime.datetime.now() < deadline:
            pass   # the notification makes the idle connection readable: the next request replaces it
        health.ensure_connection()                      # what the next request does first
        assert site.facts() == site.Facts(period.Period(start, end + datetime.timedelta(days=1)), True)
        assert _reads(site.facts) == 0
        other.execute('DELETE FROM "migration_period"')
        database.execute_sql("SELECT 1")                 # the notification comes with an answer
        assert site.facts().period is None
    finally:
        other.close()


def test_site_facts_are_not_kept_inside_a_transaction(db):
    from accounts.db import database

    with database.atomic():
        assert _reads(site.facts) == 1 and _reads(site.facts) == 1
        MigrationPeriod.create(id=1, start_at=datetime.datetime(2026, 12, 1),
                               end_at=datetime.datetime(2027, 1, 1))
        assert site.facts().period is not None           # its own uncommitted change
    assert site.facts().period is not None


def test_site_facts_without_the_trigger_are_read_every_time(db):
    """A database whose migration 0012 is not applied yet never tells: nothing is kept."""
    from accounts import health
    from accounts.db import database, is_postgres

    if not is_postgres():
        pytest.skip("SQLite reads them every time anyway")
    database.execute_sql('DROP TRIGGER "site_setting_notify" ON "site_setting"')
    health.discard_connection()
    try:
        site.facts()
        assert _reads(site.facts) == 1
    finally:
        database.execute_sql(
            'CREATE TRIGGER "site_setting_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON'
            ' "site_setting" FOR EACH STATEMENT EXECUTE FUNCTION portal_site_facts_changed()')
        health.discard_connection()
