"""The pages keep the Content-Security-Policy they send (no inline style or script): in real
Chromium, no page reports a violation — htmx's own indicator style included (it is switched off by
the htmx-config meta tag; app.css holds the indicator rule) and the local mailbox's pages."""
import pytest

from accounts import outbox
from accounts.db import database
from tests.helpers import gen_contract, gen_user

pytestmark = pytest.mark.browser


def test_no_page_breaks_its_content_security_policy(app, live_server_factory, browser_page):
    assert app.config["DEV_MAILBOX"]
    database.connect(reuse_if_open=True)
    user = gen_user(gen_contract())
    with database.atomic():
        mail = outbox.enqueue(recipient=user.email, subject="件名", body_text="https://example.jp/x",
                              kind="contact", user=user)
    database.close()
    server = live_server_factory(app)
    violations = []
    page = browser_page
    page.on("console", lambda m: violations.append(f"{page.url}: {m.text}")
            if "Content Security Policy" in m.text else None)
    for path in ("/", "/business/", "/business/signin", "/sdpf/password/reset", "/legacy/",
                 "/admin/login", "/dev/mail/", f"/dev/mail/{mail.id}"):
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
    assert not violations, "\n".join(violations)
    assert page.evaluate("getComputedStyle(document.querySelector('.mail-body')).whiteSpace") == "pre-wrap"
