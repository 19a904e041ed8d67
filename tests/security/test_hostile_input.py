"""Hostile input in every field: never a server error, never an unescaped echo, never a header it
can add to a mail, never a CSV cell a spreadsheet would run.

For every POST route and every GET route that reads query parameters (the htmx search, filters,
field fragments, ``next``...), as a principal who may use it, every field the route takes (and the
route's text arguments, half of the time) is filled with text mixing line breaks, NUL, 10,000
characters, full-width characters and emoji, HTML and SQL metacharacters and formula prefixes.
Each answer: no 5xx, and the HTML/JS payloads never come back unescaped. After the run: no queued
mail has a line break in its subject or recipient, the delivered form of every mail
(``accounts.outbox.build_message``) has only the headers the application sets, every console CSV
export has no cell that starts a formula, and no page the principal can open echoes a payload.
"""
import csv
import email
import io
import os
import re
from email import policy

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.routing import PathConverter, UnicodeConverter

from accounts.csvsafe import FORMULA_STARTS
from accounts.models import BulkUpload, Mail
from accounts.outbox import build_message
from app import ROOT
from tests.helpers import run_worker
from tests.security.principals import (
    ALL_KINDS,
    MissingTestValue,
    Upload,
    build_principal,
    build_world,
    form_for_rule,
    open_kwargs,
    route_values,
    rules,
    travel,
)
from tests.web.admin_helpers import sign_in
from tests.web.test_admin_route_walk import ROLE_MAY

pytestmark = pytest.mark.usefixtures("db")

SCRIPT = "<script>alert(1)</script>"
IMG = "\"'><img src=x onerror=alert(1)>"
# What must never come back as markup (escaped, it is harmless text).
RAW_PAYLOADS = (SCRIPT, "<img src=x onerror=alert(1)>")
PIECES = (
    "\r\n", "\n", "\r", "\x00", "\x0c", "\x85", "\u2028", "\r\nBcc: victim@example.com", "\nX-Injected: 1",
    "a" * 10_000,
    "ｆｕｌｌ－ｗｉｄｔｈ＠ｅｘａｍｐｌｅ．ｊｐ", "１２３４５６", "\u3000", "😀", "👨‍👩‍👧", "𠮷", "\u202e",
    SCRIPT, IMG, "' OR 1=1 --", "\"; DROP TABLE users; --", "%", "_", "\\", "{{ 7*7 }}",
    '=HYPERLINK("http://x")', "+1", "-1", "@SUM(1)", "\t=1", "\r=1", "name@example.jp", "123456",
    "²", "9" * 30,
)
HUGE = (0, 2**63, 10**30)  # ids no row has, the last two beyond any 64-bit column
TARGET_LOGIN_ID = "target-child"  # tests.web.admin_helpers.make_world's user in every scope


def csv_of(cells: list[str]) -> bytes:
    """A bulk-correction file whose cells are ``cells``: one row for the in-scope target user (so
    that it reaches the checks and the preview), one with a hostile login ID too."""
    header = ["login_id", "name", "new_email", "new_login_id", "phone", "portal"]

    def line(values):
        return ",".join('"' + v.replace('"', '""') + '"' for v in values) + "\r\n"

    padded = (cells * len(header))[:len(header)]
    return (line(header) + line([TARGET_LOGIN_ID, *padded[1:]]) + line(padded)).encode("utf-8")


hostile_text = st.one_of(
    st.sampled_from(PIECES),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), min_size=1, max_size=4).map("".join),
)
hostile_file = st.one_of(
    st.lists(hostile_text, min_size=1, max_size=6).map(lambda cells: Upload(csv_of(cells))),
    st.binary(max_size=300).map(Upload),
    st.tuples(hostile_text, hostile_text).map(lambda t: Upload(t[0].encode("utf-8"), name=t[1])),
)
# 25 examples a route keep the file short; HOSTILE_EXAMPLES=500 searches deeper (not in CI).
HOSTILE = settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "25")), deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# The query parameters each GET route reads (a new one must be listed: see the test below).
QUERY_PARAMS = {
    "admin.index": ("q", "match", "contract", "first_login", "locked", "method", "after", "before"),
    "admin.contracts": ("q", "after"),
    "admin.contract_page": ("children_after",),
    "admin.audit_log": ("action", "actor", "user", "since", "until", "before"),
    "admin.audit_csv": ("action", "actor", "user", "since", "until"),
    "admin.progress": ("parent", "after"),
    "admin.progress_csv": ("parent",),
    "admin.progress_contract": ("after",),
    "admin.notices_list": ("contract", "after"),
    "admin.field_show": ("version",),
    "admin.bulk_preview": ("show", "after", "before"),
    "admin.field_edit": ("version",),
    "admin.login": ("next",),
    "legacy.identity": ("edit",),
    "legacy.ticket_list": ("filed",),
    "devmail.inbox": ("to", "before"),
    "business.signin": ("next",),
    "sdpf.signin": ("next",),
    "business.tickets": ("filed",),
    "sdpf.tickets": ("filed",),
    "set_language": ("next",),
}
# Routes that end the principal's own session go last.
ENDS_SESSION = {"signout", "logout"}

PORTAL_STEP_KIND = {
    "twostep_choose": "pending_choose", "mail_otp_setup": "pending_mail_setup", "mail_otp": "pending_mail",
    "mail_otp_resend": "pending_mail", "totp_setup": "pending_totp_setup", "totp": "pending_totp",
    "backup_code": "pending_totp", "terms": "pending_terms", "signin_continue": "pending_continue",
}
PORTAL_PUBLIC = {"landing", "signin", "reset_request", "reset_password", "password_rules", "ask_admin",
                 "confirm_email"}


def kinds_for(app, endpoint: str) -> tuple[str, ...]:
    """Who may use the route (and so reaches the code behind its checks)."""
    blueprint, _, name = endpoint.rpartition(".")
    if blueprint in ("business", "sdpf"):
        if name in PORTAL_PUBLIC:
            return ("anonymous",)
        if name in PORTAL_STEP_KIND:
            return (f"{PORTAL_STEP_KIND[name]}:{blueprint}",)
        return (f"user:{blueprint}",)
    if blueprint == "admin":
        if endpoint.startswith("admin.login") or endpoint == "admin.logout":
            return ({"admin.login": "anonymous", "admin.login_code": "staff_pending",
                     "admin.login_setup": "staff_pending_setup"}.get(endpoint, "operator"),)
        # The operator may do everything; a parent admin, within a scope, what SPEC 3 allows.
        action = getattr(app.view_functions[endpoint], "console_action", None)
        return ("operator", "parent_admin") if action in ROLE_MAY["parent_admin"] else ("operator",)
    if blueprint == "legacy":
        return ({"legacy.signin": "anonymous", "legacy.choose": "legacy_choosing"}.get(endpoint, "legacy"),)
    return ("anonymous",)


HOSTILE_KINDS = [k for k in ALL_KINDS if k not in ("child_admin", "helpdesk")]


@pytest.fixture
def app(make_app):
    return make_app(RATELIMIT_ENABLED=False)


def _targets(app, kind):
    chosen = [r for r in rules(app)
              if ("POST" in r.methods or r.endpoint in QUERY_PARAMS) and kind in kinds_for(app, r.endpoint)]
    return sorted(chosen, key=lambda r: (r.endpoint.rpartition(".")[2] in ENDS_SESSION, r.rule, r.endpoint))


def _is_text(rule, arg) -> bool:
    return isinstance(rule._converters[arg], UnicodeConverter | PathConverter)


def _unescaped(response) -> list[str]:
    """Payloads that came back as markup. A CSV download holds the text as typed (a spreadsheet
    does not read HTML; its own danger, formulas, is checked on the exports)."""
    body = response.get_data(as_text=True)  # a streamed answer runs to its end (errors surface)
    if response.mimetype == "text/csv":
        return []
    return [payload for payload in RAW_PAYLOADS if payload in body]


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_input_is_refused_or_stored_harmlessly(app, kind):
    with travel() as clock:
        world = build_world(app, clock)
        p = build_principal(app, world, kind)
        targets = _targets(app, kind)
        assert targets, f"no route is tried as {kind}"
        for rule in targets:
            _attack(app, p, world, rule)
        run_worker(app)  # reset and "ask my admin" requests are answered: their mails are written
        _check_mail()
        _check_csv_exports(app, world)
        _check_pages(app, p, world)


def _attack(app, p, world, rule):
    try:
        valid = route_values(rule, p, world)
    except MissingTestValue as exc:
        pytest.fail(str(exc))
    method = "POST" if "POST" in rule.methods else "GET"
    form = (form_for_rule(app, rule, p, world) if method == "POST"
            else dict.fromkeys(QUERY_PARAMS[rule.endpoint]))
    fields = sorted(k for k in form if k != "csrf_token")
    files = {f for f in fields if isinstance(form[f], Upload)}  # a file field gets a hostile file
    # The address's arguments are hostile half of the time: text (a token, an ECID, a field name),
    # or a number no column holds.
    args = {a: st.one_of(st.just(v), hostile_text if _is_text(rule, a) else st.sampled_from(HUGE))
            for a, v in valid.items()}

    def everywhere(text, in_address=False):  # every field holds the text (the address too, if asked)
        url_args = {a: (text if _is_text(rule, a) else HUGE[-1]) if in_address else v
                    for a, v in valid.items()}
        values = {f: Upload(csv_of([text] * 5)) if f in files else text for f in fields}
        return example(values=values, url_args=url_args, htmx=False)

    @HOSTILE
    @given(values=st.fixed_dictionaries({f: hostile_file if f in files else hostile_text for f in fields}),
           url_args=st.fixed_dictionaries(args), htmx=st.booleans())
    @everywhere('=HYPERLINK("http://x")')
    @everywhere(f"{IMG}{SCRIPT}")
    @everywhere("Hello\r\nBcc: victim@example.com\r\nX-Injected: 1")
    @everywhere("-1\u2028@SUM(1)")
    @everywhere("9" * 30, in_address=True)
    @everywhere("²", in_address=True)
    def attack(values, url_args, htmx):
        url = rule.build(url_args, append_unknown=False)[1]
        headers = {"HX-Request": "true"} if htmx else {}
        if method == "POST":
            data = {**values, "csrf_token": p.token}
            if "user" in data or "contract" in data:  # check-box lists
                data = {k: [v] if k in ("user", "contract") else v for k, v in data.items()}
            r = p.client.post(url, headers=headers, **open_kwargs(data, query=False))
        else:
            r = p.client.get(url, query_string=values, headers=headers)
        echoed = _unescaped(r)
        r.close()
        where = f"{p.kind}: {method} {url} ({rule.endpoint}) {values!r:.300}"
        assert r.status_code < 500, f"{where} answered {r.status_code}"
        assert not echoed, f"{where} echoed {echoed} unescaped"

    attack()


ALLOWED_HEADERS = {"subject", "from", "to", "date", "message-id", "mime-version", "content-type",
                   "content-transfer-encoding"}


def _check_mail():
    for m in Mail.select():
        for value, what in ((m.subject, "subject"), (m.recipient, "recipient")):
            assert "\r" not in value and "\n" not in value, f"mail {m.id} ({m.kind}): {what} {value!r}"
        msg = email.message_from_bytes(build_message(m, "no-reply@portal.example.jp"), policy=policy.default)
        names = {k.lower() for k in msg.keys()}
        assert names <= ALLOWED_HEADERS, f"mail {m.id} ({m.kind}) has headers {names - ALLOWED_HEADERS}"
        assert msg["Subject"] == m.subject and msg["To"] == m.recipient, f"mail {m.id} ({m.kind})"


def _check_csv_exports(app, world):
    """Every .csv route of the URL map, as the operator; a bulk correction's report for every
    upload, as its owner (the operator or the parent admin)."""
    owners = []
    for who in (world.base.operator, world.base.parent_admin):
        client = app.test_client()
        sign_in(client, who)
        owners.append(client)
    exports = [r for r in rules(app) if r.rule.endswith(".csv")]
    assert {"admin.audit_csv", "admin.progress_csv", "admin.bulk_csv"} <= {r.endpoint for r in exports}
    for rule in exports:
        if "upload_id" in rule.arguments:
            urls = [rule.build({"upload_id": u.id}, append_unknown=False)[1] for u in BulkUpload.select()]
            assert urls, rule.rule
        else:
            urls = [rule.build({}, append_unknown=False)[1]]
        for url in urls:
            answers = []
            for client in owners:
                r = client.get(url)
                answers.append((r.status_code, r.get_data(as_text=True)))  # a stream runs to its end
                r.close()
            text = next((body for status, body in answers if status == 200), None)
            assert text is not None, f"{url}: {[status for status, _ in answers]}"
            text = text.removeprefix("\ufeff")
            cells = 0
            for row in csv.reader(io.StringIO(text, newline="")):
                for cell in row:
                    cells += 1
                    assert not cell.startswith(FORMULA_STARTS), f"{url}: formula cell {cell!r:.80}"
            assert cells > 5, url


def _check_pages(app, p, world):
    """Stored input shown later is escaped too: every page the principal opens, and the console's
    pages (user page, audit log, lists, local mailbox) as the operator. Full pages include their
    partials, so the htmx fragments are covered by them."""
    operator = app.test_client()
    sign_in(operator, world.base.operator)
    viewers = [(p, lambda rule: True),
               (type(p)("operator", operator, "/admin/"),
                lambda rule: rule.endpoint.startswith(("admin.", "devmail.")))]
    for viewer, shown in viewers:
        for rule in rules(app):
            if "GET" not in rule.methods or rule.endpoint == "static" or not shown(rule):
                continue
            url = rule.build(route_values(rule, viewer, world), append_unknown=False)[1]
            r = viewer.client.get(url)
            echoed = _unescaped(r)
            r.close()
            assert r.status_code < 500, f"{viewer.kind}: GET {url} answered {r.status_code}"
            assert not echoed, f"{viewer.kind}: GET {url} echoed {echoed}"


# --- Every query parameter a view reads is fuzzed ---------------------------------------------------

def test_every_query_parameter_read_by_a_view_is_listed():
    pattern = re.compile(r"""\b(?:request\.(?:args|values)|args)\.get(?:list)?\(\s*["']([a-z_]+)["']""")
    listed = {name for params in QUERY_PARAMS.values() for name in params}
    sources = [*sorted((ROOT / "blueprints").rglob("*.py")), ROOT / "app.py", ROOT / "accounts" / "search.py"]
    unlisted = {}
    for path in sources:
        for name in pattern.findall(path.read_text(encoding="utf-8")):
            if name not in listed:
                unlisted.setdefault(name, str(path.relative_to(ROOT)))
    assert not unlisted, f"add these query parameters to QUERY_PARAMS: {unlisted}"


def test_every_route_has_someone_to_attack_it(app):
    for rule in rules(app):
        if "POST" in rule.methods or rule.endpoint in QUERY_PARAMS:
            assert set(kinds_for(app, rule.endpoint)) <= set(HOSTILE_KINDS), rule.endpoint
    assert set(QUERY_PARAMS) <= {r.endpoint for r in rules(app)}, "QUERY_PARAMS names a route that is gone"


def test_a_subject_holding_any_line_break_the_email_package_sees_is_refused_at_the_field():
    """A form feed or U+2028 in a contact subject used to be queued, then never sent (the email
    package refuses such a header): it is refused next to the field like CR and LF."""
    from accounts import console, outbox

    breaks = {chr(i) for i in range(0x110000) if len(f"a{chr(i)}b".splitlines()) == 2}
    assert outbox.LINE_BREAKS == breaks | {"\x00"}
    for c in sorted(outbox.LINE_BREAKS):
        assert console.validate_contact(f"ご連絡{c}です", "本文") == {"subject": "line_break"}, repr(c)
        with pytest.raises(outbox.HeaderInjection):
            outbox.check_header(f"ご連絡{c}", "subject")


def test_a_nul_character_anywhere_is_refused_before_any_view(app):
    """PostgreSQL cannot store NUL (a sign-in with one in the login ID answered 500 there): a NUL in
    a form field, the query, the address or the browser's name is refused with 400, on every
    database, and nothing is written."""
    from accounts.models import AuditEntry, IdentityRequest
    from tests.helpers import csrf_token

    with travel() as clock:
        world = build_world(app, clock)
        c = app.test_client()
        token = csrf_token(c.get("/business/signin").get_data(as_text=True))
        audit = AuditEntry.select().count()
        creds = {"login_id": world.reset_user["business"].login_id, "password": "Abcdef12#",
                 "csrf_token": token}
        assert c.post("/business/signin", data={**creds, "login_id": "reset-business\x00"}).status_code == 400
        assert c.post("/business/password/reset", data={"login_id": "x\x00", "email": "a@b.jp", "name": "n",
                                                         "phone": "0312345678", "csrf_token": token}
                      ).status_code == 400
        assert c.get("/business/signin", query_string={"next": "/\x00"}).status_code == 400
        assert c.get("/business/password/reset/abc%00def").status_code == 400
        assert c.post("/business/signin", data=creds, headers={"User-Agent": "x\x00y"}).status_code == 400
        assert AuditEntry.select().count() == audit and IdentityRequest.select().count() == 2
        assert c.post("/business/signin", data=creds).status_code == 303  # the same form without NUL
