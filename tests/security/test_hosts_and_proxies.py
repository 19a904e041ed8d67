"""SPEC 11.3 (finding 3): links in mails come from BASE_URL only; an unknown Host answers 400;
the client address is read through TRUSTED_PROXIES reverse proxies, never from a header the
client can forge when no proxy is configured."""
from accounts.models import AuditEntry, IdentityRequest, Mail
from tests.helpers import csrf_token, gen_contract, gen_user, links_in, run_worker


def _reset(client, host, **headers):
    page = client.get("/sdpf/password/reset", headers={"Host": host, **headers})
    if page.status_code != 200:
        return page
    return client.post("/sdpf/password/reset", headers={"Host": host, **headers},
                       data={"login_id": "aoba-user1", "email": "aoba1@example.jp",
                             "csrf_token": csrf_token(page.get_data(as_text=True))})


def _sdpf_user():
    return gen_user(gen_contract(parent=gen_contract()), login_id="aoba-user1", email="aoba1@example.jp")


def test_a_forged_host_is_refused_before_anything_is_recorded(make_app, db):
    app = make_app(BASE_URL="https://portal.example.jp")
    client = app.test_client()
    _sdpf_user()
    for path in ("/", "/sdpf/password/reset", "/admin/login", "/legacy/"):
        r = client.get(path, headers={"Host": "attacker.example"})
        assert r.status_code == 400 and "attacker.example" not in r.get_data(as_text=True), path
    r = client.post("/sdpf/password/reset", headers={"Host": "attacker.example"},
                    data={"login_id": "aoba-user1", "email": "aoba1@example.jp"})
    assert r.status_code == 400
    assert IdentityRequest.select().count() == 0


def test_reset_links_use_base_url_even_through_a_trusted_alias(make_app, db):
    app = make_app(BASE_URL="https://portal.example.jp", TRUSTED_HOSTS="portal-alias.example.jp")
    client = app.test_client()
    _sdpf_user()
    assert _reset(client, "portal-alias.example.jp").status_code == 200
    run_worker(app)
    mail = Mail.get(Mail.kind == "reset")
    assert [link for link in links_in(mail.body_text) if "/password/reset/" in link][0].startswith(
        "https://portal.example.jp/sdpf/password/reset/")
    assert "portal-alias" not in mail.body_text


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app, db):
    app = make_app(RATELIMIT_ENABLED=True)
    client = app.test_client()
    _sdpf_user()
    statuses = [_reset(client, "localhost", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(7)]
    assert statuses.count(429) >= 1, statuses  # one client, whatever header it sends: 5 a minute
    assert not AuditEntry.select().where(AuditEntry.ip.startswith("203.0.113.")).exists()


def test_behind_one_trusted_proxy_the_client_address_comes_from_x_forwarded_for(make_app, db):
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    _sdpf_user()
    for i in range(5):  # five clients behind the proxy: each has its own limit
        assert _reset(client, "localhost", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code == 200
    assert {r.ip for r in IdentityRequest.select()} == {f"198.51.100.{i}" for i in range(5)}
    run_worker(app)
    assert AuditEntry.select().where(AuditEntry.ip == "198.51.100.0").exists()
