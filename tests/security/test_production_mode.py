"""SPEC 11.7 (findings 8 and 10): production is the default; it refuses to start without its
secrets, sends Secure cookies and HSTS, and has no local mailbox; the development key file is
private."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app import DEFAULTS, config_from_env, create_app
from tests.conftest import TEST_CONFIG

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {k: v for k, v in TEST_CONFIG.items() if k not in ("APP_ENV", "TESTING")}


def test_production_is_the_default():
    assert DEFAULTS["APP_ENV"] == "production"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "BASE_URL"])
def test_production_refuses_to_start_without_its_secrets_in_one_line(_schema, missing):
    config = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(SystemExit) as stopped:
        create_app(config)
    message = str(stopped.value)
    assert message.startswith(f"{missing} is not set") and "\n" not in message


def test_the_command_line_says_it_in_one_line_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "BASE_URL")}
    env.update(APP_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path}/x.db", INSTANCE_PATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db-upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "SECRET_KEY is not set: production needs a long random value, e.g. python -c 'import "
        "secrets; print(secrets.token_hex(32))' (or set APP_ENV=development)."]


def test_production_cookies_are_secure_hsts_is_sent_and_there_is_no_mailbox(_schema):
    app = create_app(dict(PRODUCTION, BASE_URL="https://portal.example.jp", MAIL_SERVER=None))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    client = app.test_client()
    r = client.get("/", base_url="https://portal.example.jp")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    assert client.get("/dev/mail/", base_url="https://portal.example.jp").status_code == 404
    assert not any(rule.rule.startswith("/dev/mail") for rule in app.url_map.iter_rules())


def test_secure_cookies_can_be_switched_off_explicitly(_schema):
    app = create_app(dict(PRODUCTION, SESSION_COOKIE_SECURE=False))
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert "Strict-Transport-Security" not in app.test_client().get("/").headers


def test_development_has_the_mailbox_without_smtp_and_not_with_it(_schema):
    assert any(r.rule.startswith("/dev/mail") for r in create_app(dict(TEST_CONFIG)).url_map.iter_rules())
    with_smtp = create_app(dict(TEST_CONFIG, MAIL_SERVER="127.0.0.1"))
    assert not any(r.rule.startswith("/dev/mail") for r in with_smtp.url_map.iter_rules())


def test_the_generated_development_key_is_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = config_from_env()
    key_file = tmp_path / "secret_key"
    assert config["SECRET_KEY"] == key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
