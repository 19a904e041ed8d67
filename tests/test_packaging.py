"""`pip install .` (not editable) gives a working application: a wheel built from a copy of the
sources without any compiled catalog, installed into a throwaway virtual environment under /tmp,
migrates a database and serves Japanese pages and static files through gunicorn with the
repository's gunicorn.conf.py, started from an unrelated directory (SPEC 12).

The throwaway environment takes its dependencies (Flask, gunicorn...) from this interpreter's
site-packages through a .pth line, so nothing is downloaded and the shared environment is never
touched; only the application itself comes from the wheel.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "instance", "tests", "benchmarks", "docs", "build", "*.egg-info", "__pycache__",
    "*.mo", ".env", "test-results", ".ruff_cache", ".pytest_cache", "node_modules")


def _can_build_offline() -> bool:
    """setuptools builds wheels itself from 70.1 on (older ones need the wheel package)."""
    return bool(importlib.util.find_spec("setuptools.command.bdist_wheel")
                or importlib.util.find_spec("wheel"))


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed():
    work = Path(tempfile.mkdtemp(prefix="portal-wheel-", dir="/tmp"))
    try:
        src = work / "src"
        shutil.copytree(ROOT, src, ignore=SOURCE_IGNORE)
        assert not list(src.rglob("*.mo"))
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(src)]
        if _can_build_offline():
            build.insert(4, "--no-build-isolation")  # CI: `make install` brings a recent setuptools
        _run(build, cwd=work)
        wheel = next((work / "dist").glob("portal_migration-*.whl"))

        venv = work / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        python = venv / "bin" / "python"
        site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                    .stdout.strip())
        (site / "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=work)
        yield {"work": work, "wheel": wheel, "python": python, "site": site}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_wheel_holds_the_application_and_compiled_catalogs_but_no_tests(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for expected in ("app.py", "accounts/models.py", "blueprints/admin/contracts.py",
                     "templates/base.html", "templates/mail/reset_password.txt", "static/app.css",
                     "static/vendor/htmx-2.0.11.min.js", "migrations/0001_initial.py",
                     "translations/portal/ja/LC_MESSAGES/messages.mo",
                     "translations/operator/ja/LC_MESSAGES/messages.mo"):
        assert expected in names, expected
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "instance/", "docs/"))]


def test_installed_app_migrates_and_serves_japanese_from_any_directory(installed, tmp_path):
    python, site = installed["python"], installed["site"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTHON"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'installed.db'}", SECRET_KEY="packaging-test",
               BASE_URL=f"http://127.0.0.1:{port}", APP_ENV="production", SESSION_COOKIE_SECURE="0",
               MAIL_SERVER="", PORT=str(port), WEB_CONCURRENCY="1", INSTANCE_PATH=str(tmp_path / "inst"))

    where = _run([str(python), "-c", "import app; print(app.__file__)"], cwd=elsewhere, env=env)
    assert where.stdout.strip() == str(site / "app.py")  # the installed copy, not the checkout
    upgrade = _run([str(python), "-m", "flask", "--app", "app", "db-upgrade"], cwd=elsewhere, env=env)
    assert "0001_initial" in upgrade.stdout

    server = subprocess.Popen(
        [str(python), "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    server.kill()
                    pytest.fail("gunicorn did not start:\n" + server.stdout.read().decode()[-3000:])
                time.sleep(0.3)
        with urllib.request.urlopen(base + "/business/", timeout=5) as r:
            page = r.read().decode("utf-8")
        assert 'lang="ja"' in page
        assert "ログインID/パスワードでログイン" in page
        with urllib.request.urlopen(base + "/sdpf/signin", timeout=5) as r:
            assert "パスワードの再設定はこちら" in r.read().decode("utf-8")
        with urllib.request.urlopen(base + "/static/vendor/htmx-2.0.11.min.js", timeout=5) as r:
            assert r.status == 200 and len(r.read()) > 10_000
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            output = server.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output = server.communicate()[0].decode()
    assert '"GET /business/ HTTP/1.1" 200' in output  # the access log of gunicorn.conf.py
    assert not (site / "instance").exists()  # nothing written into site-packages
