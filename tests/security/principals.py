"""What the class-level security guards share: a world, every kind of principal reached through the
real pages, a value for every route argument and the form every POST route takes, with right
answers (the right password, a right code, a live reset link), so that a view that acted on the
wrong method or without a CSRF token would really change something.

A new route argument without a value in ``ARG_VALUES``, or a new POST route without a form in
``FORMS``, fails the guards (``test_every_route_has_test_values``): they never skip a route.
"""
import csv
import datetime
import io
import re
import tempfile
from dataclasses import dataclass

import pyotp
import time_machine
from flask import Flask

from accounts import bulk_corrections, passwords, profile, scope, twostep
from accounts import sessions as session_store
from accounts.identity import fields_for
from accounts.models import (
    ALL_MODELS,
    BUSINESS,
    MAIL_OTP,
    SDPF,
    TOTP,
    LegacyAccount,
    Mail,
    Staff,
    TermsAcceptance,
    TermsVersion,
    TrustedBrowser,
    User,
    WebSession,
)
from tests.helpers import csrf_token, gen_user, links_in
from tests.legacy_helpers import DURING_AT, gen_legacy, set_period
from tests.legacy_helpers import PASSWORD as LEGACY_PASSWORD
from tests.web.admin_helpers import make_world, sign_in
from tests.web.portal_journey import Portal, ensure_terms, last_mail, otp_from_mail

PASSWORD = "Abcdef12#"      # meets both portals' policies
NEW_PASSWORD = "Zyxwvu98#"  # the "new password" every password form offers
STAFF_PASSWORD = "Staff-pass-12"
PORTALS = (BUSINESS, SDPF)
# Between building the principals and walking the routes the clock moves on: sessions are then
# "touched" (a read's allowed bookkeeping) and TOTP codes are new, unused ones.
WALK_DELAY = datetime.timedelta(minutes=2)


# --- The world ----------------------------------------------------------------------------------

@dataclass
class World:
    base: object                  # tests.web.admin_helpers.World: contracts, staff, admins, targets
    terms: TermsVersion
    reset_user: dict              # portal -> a user of that portal with PASSWORD and a live reset mail
    reset_token: dict             # portal -> raw token read from that real reset mail
    email_token: dict             # portal -> raw token read from a real e-mail change mail
    staff: Staff                  # staff with a password and TOTP: what the console sign-in form types
    staff_secret: str
    legacy: LegacyAccount         # what the legacy sign-in form types
    mail_id: int
    session_id: int               # a live session of someone else (a reset user)
    browser_id: int               # a trusted browser of someone else
    upload_id: int                # a previewed, not yet applied bulk correction (the operator's)
    clock: object                 # the time-machine traveller (frozen during the period)


def identity_of(user: User) -> dict:
    return {f: getattr(user, f) for f in fields_for(user.portal)}


def build_world(app: Flask, clock) -> World:
    """Contracts, staff and admins (make_world), the current terms, the migration period (we are in
    it), a live reset link per portal from a real reset request answered by the worker, and a live
    e-mail change link per portal."""
    set_period()
    base = make_world()
    terms = ensure_terms()
    reset_user, reset_token, email_token = {}, {}, {}
    for portal, contract in ((BUSINESS, base.parent), (SDPF, base.child)):
        user = gen_user(contract, login_id=f"reset-{portal}", email=f"reset-{portal}@example.jp",
                        name="山田 太郎", phone="0312345678", password=PASSWORD, first_login_done=True,
                        twostep_method=MAIL_OTP)
        TermsAcceptance.create(user=user, terms=terms)
        p = Portal(app.test_client(), portal)
        p.request_reset(**identity_of(user))
        reset_user[portal] = user
        reset_token[portal] = p.reset_link(user).rsplit("/", 1)[1]
        with app.app_context():
            profile.request_email_change(user, f"new-{portal}@example.jp", minutes=60,
                                         base_url=app.config["BASE_URL"])
        link = next(x for x in links_in(last_mail("email_change").body_text) if "/profile/email/" in x)
        email_token[portal] = link.rsplit("/", 1)[1]
    secret = pyotp.random_base32()
    staff = Staff.create(login_id="sec-op", login_id_key="sec-op", role="operator",
                         password_hash=passwords.hasher().hash(STAFF_PASSWORD), totp_secret=secret,
                         totp_confirmed_at=datetime.datetime(2026, 1, 1))
    legacy = gen_legacy(login_id="legacy-one", contract=base.child, email="legacy-one@example.jp")
    victim = reset_user[BUSINESS]
    return World(base, terms, reset_user, reset_token, email_token, staff, secret, legacy,
                 Mail.select().first().id, _other_session(victim), _trusted_browser(victim),
                 _bulk_upload(base.operator, base), clock)


@dataclass(frozen=True)
class Upload:
    """A file field of a form (sent as multipart/form-data)."""

    content: bytes
    name: str = "fix.csv"


def correction_csv(world_base, name="鈴木\u3000次郎", **cells) -> bytes:
    """A bulk-correction file that would really change the in-scope target user."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    row = {"login_id": world_base.target_child.login_id, "name": name, **cells}
    writer.writerow(list(row))
    writer.writerow(list(row.values()))
    return buf.getvalue().encode("utf-8")


def _bulk_upload(who, base) -> int | None:
    """A previewed correction of ``who`` (the console's bulk corrections), ready to apply."""
    if not scope.may(who, scope.EDIT):
        return None
    with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
        tmp.write(correction_csv(base))
        tmp.flush()
        return bulk_corrections.preview(who, tmp.name, "fix.csv").id


def open_kwargs(form: dict, *, query: bool = True) -> dict:
    """Keyword arguments of ``client.open`` that carry the form: as the body (multipart, encoded
    here in memory, when it holds a file) and, unless ``query`` is false, its text fields in the
    query string too."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    text = {k: v for k, v in form.items() if not isinstance(v, Upload)}
    kwargs = {"query_string": text} if query else {}
    if len(text) == len(form):
        return {**kwargs, "data": text}
    fields = dict(text)
    fields.update({k: FileStorage(io.BytesIO(v.content), v.name, content_type="text/csv")
                   for k, v in form.items() if isinstance(v, Upload)})
    boundary, body = encode_multipart(fields)
    return {**kwargs, "data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


# --- Principals -------------------------------------------------------------------------------

@dataclass
class Principal:
    kind: str
    client: object
    home: str                        # a page only this principal reaches (proves who it is)
    token: str = ""                  # CSRF token of its session
    portal: str | None = None
    user: object = None              # User / Staff / LegacyAccount
    password: str | None = None
    totp_secret: str | None = None   # the confirmed TOTP secret
    setup_secret: str | None = None  # a TOTP secret being set up in this session
    backup_code: str | None = None   # an unused backup code
    other_session_id: int | None = None
    browser_id: int | None = None
    choice_id: int | None = None     # legacy: the contract to pick
    upload_id: int | None = None     # console: its own previewed bulk correction

    def otp(self) -> str:
        """The code of the latest Mail OTP this principal was sent (a live one, if any)."""
        mail = last_mail("otp", self.user.email) if isinstance(self.user, User) else None
        return otp_from_mail(mail) if mail else "000000"

    def totp_code(self, secret=None) -> str:
        secret = secret or self.totp_secret
        return pyotp.TOTP(secret.replace(" ", "")).now() if secret else "000000"

    def method_code(self) -> str:
        """A right code of the user's current two-step method."""
        if isinstance(self.user, User) and self.user.twostep_method == TOTP:
            return self.totp_code()
        return self.otp()


def _user(portal, world, login_id, *, method=None, terms=True, backup=False, first_login_done=True):
    contract = world.base.parent if portal == BUSINESS else world.base.child
    user = gen_user(contract, login_id=login_id, email=f"{login_id}@example.jp", password=PASSWORD,
                    first_login_done=first_login_done, twostep_method=method,
                    totp_secret=pyotp.random_base32() if method == TOTP else None)
    if terms:
        TermsAcceptance.create(user=user, terms=world.terms)
    codes = twostep.new_backup_codes(user) if backup else []
    return user, codes


def _expect(response, location_end, what):
    assert response.status_code in (302, 303) and response.headers["Location"].endswith(location_end), \
        f"{what}: {response.status_code} {response.headers.get('Location')}"


def _secret_on(html: str) -> str:
    return re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")


def _pending(app, world, kind, portal) -> Principal:
    c = app.test_client()
    p = Portal(c, portal)
    step = kind.removeprefix("pending_")
    if step == "mail":
        user, codes = _user(portal, world, f"pm-{portal}", method=MAIL_OTP)
        _expect(p.sign_in(user.login_id, PASSWORD), "/signin/mail-otp", kind)
        home = f"/{portal}/signin/mail-otp"
    elif step == "totp":
        user, codes = _user(portal, world, f"pt-{portal}", method=TOTP, backup=True)
        _expect(p.sign_in(user.login_id, PASSWORD), "/signin/totp", kind)
        home = f"/{portal}/signin/totp"
    elif step in ("choose", "mail_setup", "totp_setup", "continue"):
        user, codes = _user(portal, world, f"p{step}-{portal}", first_login_done=False)
        _expect(p.sign_in(user.login_id, PASSWORD), "/signin/method", kind)
        home = f"/{portal}/signin/method"
        if step == "mail_setup":
            _expect(p.post("/signin/method", {"method": MAIL_OTP}), "/signin/mail-otp/setup", kind)
            home = f"/{portal}/signin/mail-otp/setup"
        elif step in ("totp_setup", "continue"):
            _expect(p.post("/signin/method", {"method": TOTP}), "/signin/totp/setup", kind)
            secret = _secret_on(p.landed[1].get_data(as_text=True))
            home = f"/{portal}/signin/totp/setup"
            if step == "continue":
                r = p.post("/signin/totp/setup", {"code": pyotp.TOTP(secret).now()})
                assert r.status_code == 200 and "backup" in r.get_data(as_text=True).lower(), kind
                home = f"/{portal}/signin/continue"
                user = User.get_by_id(user.id)
                principal = Principal(kind, c, home, p.token, portal, user, PASSWORD,
                                      totp_secret=secret)
                return principal
            return Principal(kind, c, home, p.token, portal, user, PASSWORD, setup_secret=secret)
    elif step == "terms":
        user, codes = _user(portal, world, f"pterms-{portal}", method=TOTP, terms=False)
        _expect(p.sign_in(user.login_id, PASSWORD), "/signin/totp", kind)
        _expect(p.post("/signin/totp", {"code": pyotp.TOTP(user.totp_secret).now()}), "/signin/terms", kind)
        home = f"/{portal}/signin/terms"
    else:  # pragma: no cover - a new kind needs its set-up here
        raise AssertionError(f"unknown pending kind {kind}")
    user = User.get_by_id(user.id)
    return Principal(kind, c, home, p.token, portal, user, PASSWORD, totp_secret=user.totp_secret,
                     backup_code=codes[0] if codes else None)


def _end_user(app, world, portal) -> Principal:
    """Fully signed in through the pages; the current method re-checked (so that the method change
    pages are open), a new TOTP secret being set up and a Mail OTP sent from the profile."""
    method = MAIL_OTP if portal == BUSINESS else TOTP
    user, codes = _user(portal, world, f"user-{portal}", method=method, backup=True)
    c = app.test_client()
    p = Portal(c, portal)
    r = p.sign_in(user.login_id, PASSWORD)
    if method == MAIL_OTP:
        _expect(p.post("/signin/mail-otp", {"code": otp_from_mail(last_mail("otp", user.email))}),
                "/dashboard", portal)
    else:
        _expect(p.post("/signin/totp", {"code": pyotp.TOTP(user.totp_secret).now()}), "/dashboard", portal)
    p.get("/profile/twostep")
    _expect(p.post("/profile/twostep", {"code": codes[0]}), "/profile/twostep", "re-check")
    r = p.post("/profile/twostep/totp", {"start": "1"})
    assert r.status_code == 200, r.status_code
    setup_secret = _secret_on(r.get_data(as_text=True))
    r = p.post("/profile/twostep/mail", {"start": "1"})
    assert r.status_code == 200, r.status_code
    p.get("/profile")
    browser_id = _trusted_browser(user)
    user = User.get_by_id(user.id)
    return Principal(f"user:{portal}", c, f"/{portal}/profile", p.token, portal, user, PASSWORD,
                     totp_secret=user.totp_secret, setup_secret=setup_secret, backup_code=codes[1],
                     other_session_id=_other_session(user), browser_id=browser_id)


def _trusted_browser(user) -> int:
    """A remembered browser of the user (what "revoke" would end)."""
    raw = twostep.trust_browser(user, days=30, label="other browser")
    return TrustedBrowser.get(TrustedBrowser.token_hash == twostep._token_hash(raw)).id


def _other_session(who) -> int:
    """Another live session of the same account (what "sign out that session" would end)."""
    return session_store.create("", principal=session_store.principal_key(who), signed_in=True,
                                ip="192.0.2.9", user_agent="Firefox/130.0 Linux")[1].id


def _console(app, world, kind) -> Principal:
    who = getattr(world.base, kind)
    c = app.test_client()
    sign_in(c, who)
    token = csrf_token(c.get("/admin/").get_data(as_text=True))
    return Principal(kind, c, "/admin/", token, who.portal if isinstance(who, User) else None, who,
                     other_session_id=_other_session(who), upload_id=_bulk_upload(who, world.base))


def _staff_pending(app, world, kind) -> Principal:
    c = app.test_client()
    if kind == "staff_pending":
        staff, secret = world.staff, None
    else:
        staff = Staff.create(login_id="sec-new", login_id_key="sec-new", role="helpdesk",
                             password_hash=passwords.hasher().hash(STAFF_PASSWORD))
    page = c.get("/admin/login").get_data(as_text=True)
    r = c.post("/admin/login", data={"login_id": staff.login_id, "password": STAFF_PASSWORD,
                                     "csrf_token": csrf_token(page)})
    home = "/admin/login/code" if kind == "staff_pending" else "/admin/login/setup"
    _expect(r, home, kind)
    html = c.get(home).get_data(as_text=True)
    if kind != "staff_pending":
        secret = _secret_on(html)
    return Principal(kind, c, home, csrf_token(html), None, staff, STAFF_PASSWORD,
                     totp_secret=world.staff_secret if kind == "staff_pending" else None,
                     setup_secret=secret)


def _legacy(app, world, kind) -> Principal:
    c = app.test_client()
    if kind == "legacy":
        account, home, choice = world.legacy, "/legacy/identity", None
    else:
        first = gen_legacy(login_id="legacy-two", contract=world.base.child, new_login_id="legacy-two-a")
        gen_legacy(login_id="legacy-two", contract=world.base.other_child, new_login_id="legacy-two-b")
        account, home, choice = first, "/legacy/choose", first.id
    page = c.get("/legacy/").get_data(as_text=True)
    r = c.post("/legacy/signin", data={"login_id": account.login_id, "password": LEGACY_PASSWORD,
                                       "csrf_token": csrf_token(page)})
    _expect(r, "/legacy/" if kind == "legacy" else "/legacy/choose", kind)
    html = c.get(home).get_data(as_text=True)
    return Principal(kind, c, home, csrf_token(html), None, account, LEGACY_PASSWORD, choice_id=choice)


def _anonymous(app, world, kind) -> Principal:
    c = app.test_client()
    return Principal(kind, c, "/", csrf_token(c.get("/business/signin").get_data(as_text=True)))


PENDING_STEPS = ("mail", "totp", "choose", "mail_setup", "totp_setup", "terms", "continue")
# Every sign-in step once, the two portals taking turns (they share the views), and both portals'
# signed-in users (ALL_KINDS: every step in both portals).
KINDS = (["anonymous"]
         + [f"pending_{step}:{PORTALS[i % 2]}" for i, step in enumerate(PENDING_STEPS)]
         + [f"user:{portal}" for portal in PORTALS]
         + ["parent_admin", "child_admin", "helpdesk", "operator", "staff_pending", "staff_pending_setup",
            "legacy", "legacy_choosing"])

ALL_KINDS = (KINDS[:1] + [f"pending_{step}:{portal}" for step in PENDING_STEPS for portal in PORTALS]
             + KINDS[1 + len(PENDING_STEPS):])


def build_principal(app, world, kind) -> Principal:
    name, _, portal = kind.partition(":")
    if name == "anonymous":
        return _anonymous(app, world, kind)
    if name.startswith("pending_"):
        p = _pending(app, world, name, portal)
        p.kind = kind
        return p
    if name == "user":
        return _end_user(app, world, portal)
    if name in ("parent_admin", "child_admin", "helpdesk", "operator"):
        return _console(app, world, name)
    if name.startswith("staff_pending"):
        return _staff_pending(app, world, name)
    if name.startswith("legacy"):
        return _legacy(app, world, name)
    raise AssertionError(f"unknown principal kind {kind}")  # pragma: no cover


def travel():
    """Inside the migration period, with a frozen clock (legacy_helpers' period)."""
    return time_machine.travel(DURING_AT, tick=False)


# --- Route arguments --------------------------------------------------------------------------------

def _split(endpoint):
    blueprint, _, name = endpoint.rpartition(".")
    return blueprint, name


def _token_arg(endpoint, p, w):
    blueprint, name = _split(endpoint)
    return {"reset_password": w.reset_token, "confirm_email": w.email_token}[name][blueprint]


def _action_arg(endpoint, p, w):
    return {"admin.reset_action": "disable", "admin.staff_action": "disable"}[endpoint]


# arg -> (endpoint, principal, world) -> value. Values that make the request a real one: a user in
# every console role's scope, a live token, a session or browser of the principal itself.
ARG_VALUES = {
    "user_id": lambda e, p, w: (w.base.child_admin.id if e == "admin.contract_admin_revoke"
                                else w.base.target_child.id),
    "field": lambda e, p, w: "email",
    "action": _action_arg,
    "ecid": lambda e, p, w: w.base.child.ecid,
    "session_id": lambda e, p, w: p.other_session_id or w.session_id,
    "browser_id": lambda e, p, w: p.browser_id or w.browser_id,
    "token": _token_arg,
    "staff_id": lambda e, p, w: w.base.helpdesk.id,
    "version": lambda e, p, w: w.terms.version,
    "mail_id": lambda e, p, w: w.mail_id,
    "code": lambda e, p, w: "en",
    "rest": lambda e, p, w: "old/menu.html",
    "filename": lambda e, p, w: "app.css",
    "upload_id": lambda e, p, w: p.upload_id or w.upload_id,
}


class MissingTestValue(AssertionError):
    pass


def route_values(rule, p, w) -> dict:
    values = {}
    for arg in sorted(rule.arguments):
        if arg not in ARG_VALUES:
            raise MissingTestValue(f"no test value for <{arg}> in {rule.rule} ({rule.endpoint}): "
                                   "add one to tests/security/principals.py ARG_VALUES")
        try:
            values[arg] = ARG_VALUES[arg](rule.endpoint, p, w)
        except KeyError as exc:
            raise MissingTestValue(f"no test value for <{arg}> of {rule.endpoint} ({rule.rule}): "
                                   f"add one to ARG_VALUES ({exc})") from None
    return values


def url_of(rule, p, w) -> str:
    return rule.build(route_values(rule, p, w), append_unknown=False)[1]


# --- Forms ----------------------------------------------------------------------------------------

def _signin_creds(p, w, portal):
    if p.portal == portal and p.password and isinstance(p.user, User):
        return {"login_id": p.user.login_id, "password": p.password, "next": ""}
    return {"login_id": w.reset_user[portal].login_id, "password": PASSWORD, "next": ""}


TICKET = {"subject": "請求書について", "body": "請求書の送付先を変更したい。"}

# The fields each POST route takes, by endpoint name within a portal (both portals share them).
PORTAL_FORMS = {
    "signin": _signin_creds,
    "signout": lambda p, w, portal: {},
    "reset_request": lambda p, w, portal: identity_of(w.reset_user[portal]),
    "reset_password": lambda p, w, portal: {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    "password_rules": lambda p, w, portal: {"password": "Abc1"},
    "ask_admin": lambda p, w, portal: {"login_id": w.reset_user[portal].login_id,
                                       "message": "サインインできません"},
    "twostep_choose": lambda p, w, portal: {"method": MAIL_OTP},
    "mail_otp": lambda p, w, portal: {"code": p.otp(), "remember": "1"},
    "mail_otp_setup": lambda p, w, portal: {"code": p.otp(), "remember": "1"},
    "mail_otp_resend": lambda p, w, portal: {},
    "totp_setup": lambda p, w, portal: {"code": p.totp_code(p.setup_secret)},
    "totp": lambda p, w, portal: {"code": p.totp_code(), "remember": "1"},
    "backup_code": lambda p, w, portal: {"code": p.backup_code or "abcde-fghjk", "remember": "1"},
    "signin_continue": lambda p, w, portal: {},
    "terms": lambda p, w, portal: {"version": str(w.terms.version)},
    "change_password": lambda p, w, portal: {"current": p.password or PASSWORD, "password": NEW_PASSWORD,
                                             "confirm": NEW_PASSWORD},
    "change_email": lambda p, w, portal: {"email": f"changed-{portal}@example.jp"},
    "confirm_email": lambda p, w, portal: {},
    "backup_codes": lambda p, w, portal: {},
    "revoke_browser": lambda p, w, portal: {},
    "end_session": lambda p, w, portal: {},
    "end_other_sessions": lambda p, w, portal: {},
    "twostep_change": lambda p, w, portal: {"code": p.method_code()},
    "twostep_change_send": lambda p, w, portal: {},
    "switch_totp": lambda p, w, portal: {"code": p.totp_code(p.setup_secret)},
    "switch_mail": lambda p, w, portal: {"code": p.otp()},
    "tickets": lambda p, w, portal: dict(TICKET),
}

OTHER_FORMS = {
    "set_language": lambda p, w: {"next": "/"},
    "admin.login": lambda p, w: {"login_id": (p.user if isinstance(p.user, Staff) else w.staff).login_id,
                                 "password": STAFF_PASSWORD},
    "admin.login_code": lambda p, w: {"code": p.totp_code(p.totp_secret or w.staff_secret)},
    "admin.login_setup": lambda p, w: {"code": p.totp_code(p.setup_secret or w.staff_secret)},
    "admin.logout": lambda p, w: {},
    "admin.field_save": lambda p, w: {"value": "corrected@example.jp",
                                      "version": str(User.get_by_id(w.base.target_child.id).version)},
    "admin.field_validate": lambda p, w: {"value": "corrected@example.jp"},
    "admin.send_reset_link": lambda p, w: {},
    "admin.reset_action": lambda p, w: {},
    "admin.contact": lambda p, w: {"subject": "ご連絡", "body": "初回ログインをお願いします。"},
    "admin.remind": lambda p, w: {"user": [str(w.base.target_child.id)]},
    "admin.notices_send": lambda p, w: {"user": [str(w.base.target_child.id)],
                                        "contract": [str(w.base.child.id)],
                                        "back_contract": str(w.base.child.id)},
    "admin.set_migration_period": lambda p, w: {"start": "2026-12-02T00:00", "end": "2027-04-30T23:59"},
    "admin.contract_rename": lambda p, w: {"name": "改名した契約"},
    "admin.contract_admin_grant": lambda p, w: {"login_id": w.base.target_child.login_id},
    "admin.contract_admin_revoke": lambda p, w: {},
    "admin.terms_publish": lambda p, w: {"title": "カスタマポータル規約 第2版", "body": "第1条 改定",
                                         "at": ""},
    "admin.terms_preview": lambda p, w: {"title": "カスタマポータル規約 第2版", "body": "第1条 改定"},
    "admin.staff_action": lambda p, w: {},
    "admin.bulk_upload": lambda p, w: {"file": Upload(correction_csv(w.base, name="高橋\u3000三郎"))},
    "admin.bulk_apply": lambda p, w: {},
    "admin.end_my_session": lambda p, w: {},
    "admin.end_my_other_sessions": lambda p, w: {},
    "legacy.signin": lambda p, w: {"login_id": (p.user if isinstance(p.user, LegacyAccount)
                                                else w.legacy).login_id, "password": LEGACY_PASSWORD},
    "legacy.choose": lambda p, w: {"account": str(p.choice_id or w.legacy.id)},
    "legacy.confirm": lambda p, w: {"email": "confirmed@example.jp", "login_id": "confirmed-id"},
    "legacy.signout": lambda p, w: {},
    "legacy.ticket_list": lambda p, w: dict(TICKET),
    "legacy.other": lambda p, w: {},
}


def has_form(endpoint) -> bool:
    blueprint, name = _split(endpoint)
    return name in PORTAL_FORMS if blueprint in PORTALS else endpoint in OTHER_FORMS


def form_of(endpoint, p, w) -> dict:
    """The fields a POST to this endpoint takes, with right answers for this principal."""
    blueprint, name = _split(endpoint)
    if blueprint in PORTALS:
        return PORTAL_FORMS[name](p, w, blueprint)
    return OTHER_FORMS[endpoint](p, w)


def post_endpoint_of(app, rule):
    """The endpoint a POST to this rule's address reaches (itself, or the POST rule at the same
    path: a GET page and its form's POST may be two endpoints)."""
    if "POST" in rule.methods:
        return rule.endpoint
    for other in app.url_map.iter_rules():
        if other.rule == rule.rule and "POST" in other.methods:
            return other.endpoint
    return None


def form_for_rule(app, rule, p, w) -> dict:
    """The form of the POST at this rule's address (with the CSRF token), or just the token."""
    endpoint = post_endpoint_of(app, rule)
    data = form_of(endpoint, p, w) if endpoint else {}
    data["csrf_token"] = p.token
    return data


SIGN_IN_STARTS = {"business.signin", "sdpf.signin", "admin.login", "legacy.signin", "legacy.choose"}


def rules(app):
    """Every rule; those that (re)start a sign-in last, so that a hole there, which would change
    who the principal is, cannot hide a hole in another route."""
    return sorted(app.url_map.iter_rules(),
                  key=lambda r: (r.endpoint in SIGN_IN_STARTS, r.rule, r.endpoint))


# --- What an attacker would move ---------------------------------------------------------------------

EXCLUDED_COLUMNS = {WebSession: {"last_seen_at", "data"}}  # a read's bookkeeping on the session row


@dataclass(frozen=True)
class Snapshot:
    counts: dict
    counters: dict
    rows: dict      # table -> (column names, rows)


def _column(rows, table, column):
    names, values = rows[table]
    i = names.index(column)
    return [row[i] for row in values]


def snapshot() -> Snapshot:
    """Every table's rows (one query each), its row count, and the counters an attacker would move
    (derived from those rows, named so that a failure says what moved)."""
    rows = {}
    for model in ALL_MODELS:
        skip = EXCLUDED_COLUMNS.get(model, set())
        fields = [f for f in model._meta.sorted_fields if f.name not in skip]
        rows[model.__name__] = ([f.name for f in fields], list(
            model.select(*fields).order_by(model._meta.primary_key).tuples()))

    def total(table, column):
        return sum(_column(rows, table, column))

    def used(table):
        return sum(1 for v in _column(rows, table, "used_at") if v is not None)

    counters = {
        "User.failed_logins": total("User", "failed_logins"),
        "User.twostep_failures": total("User", "twostep_failures"),
        "Staff.failed_logins": total("Staff", "failed_logins"),
        "Staff.twostep_failures": total("Staff", "twostep_failures"),
        "LegacyAccount.failed_logins": total("LegacyAccount", "failed_logins"),
        "OneTimeCode.attempts": total("OneTimeCode", "attempts"),
        "OneTimeCode used": used("OneTimeCode"),
        "BackupCode used": used("BackupCode"),
        "ResetToken used": used("ResetToken"),
        "User two-step": list(zip(_column(rows, "User", "id"), _column(rows, "User", "twostep_method"),
                                  _column(rows, "User", "totp_secret"), strict=True)),
        "Staff TOTP": list(zip(_column(rows, "Staff", "id"), _column(rows, "Staff", "totp_secret"),
                               _column(rows, "Staff", "totp_confirmed_at"), strict=True)),
        "Mail (outbox)": len(rows["Mail"][1]),
    }
    return Snapshot({name: len(r) for name, (_, r) in rows.items()}, counters, rows)


def differences(before: Snapshot, after: Snapshot) -> str:
    """What changed, for the failure message ("" when nothing did)."""
    out = []
    for name in before.counts:
        if before.counts[name] != after.counts[name]:
            out.append(f"{name}: {before.counts[name]} -> {after.counts[name]} rows")
    for name in before.counters:
        if before.counters[name] != after.counters[name]:
            out.append(f"{name}: {before.counters[name]} -> {after.counters[name]}")
    for name, (columns, old_rows) in before.rows.items():
        new_rows = after.rows[name][1]
        if len(old_rows) != len(new_rows) or old_rows == new_rows:
            continue
        for old, new in zip(old_rows, new_rows, strict=True):
            if old != new:
                cols = ", ".join(f"{c}: {a!r:.40} -> {b!r:.40}"
                                 for c, a, b in zip(columns, old, new, strict=True) if a != b)
                out.append(f"{name} {columns[0]}={old[0]} changed ({cols})")
    return "; ".join(out)
