"""peewee models for the whole product, with the query class methods the views and commands use.

Times are stored as naive UTC datetimes; screens show them in JST (accounts.clock).

Why one long module: the models are the schema, and the schema is one thing:
tests/accounts/test_schema.py compares ``ALL_MODELS`` with what the numbered migrations build, and
a reader checks a foreign key or an index against its target here without changing file. There
are no rules in it beyond a query per class method; the rules live in the modules that use them.
"""
from peewee import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from .clock import utcnow
from .db import database, first_row

BUSINESS = "business"
SDPF = "sdpf"
PORTALS = (BUSINESS, SDPF)

ORIGIN_LEGACY = "legacy"   # copied from the legacy Login Portal by the migration
ORIGIN_NATIVE = "native"   # created in a new portal

MAIL_OTP = "mail"
TOTP = "totp"
TWOSTEP_METHODS = (MAIL_OTP, TOTP)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Principal:
    """Flask-Login's protocol for the two kinds of account that sign in (User, Staff), duck-typed so
    that the domain does not import Flask. The session identity is ``<KIND>:<id>``: a portal user
    and a staff account never collide (accounts.sessions keys session rows by it)."""

    KIND = ""
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return not self.disabled

    def get_id(self) -> str:
        return f"{self.KIND}:{self.id}"


class Contract(BaseModel):
    """A customer contract, identified by its ECID. A parent contract has no parent."""

    id = AutoField()
    ecid = CharField(max_length=14, unique=True)  # stored in lower case
    parent = ForeignKeyField("self", null=True, backref="children", on_delete="RESTRICT")
    name = CharField(max_length=255)
    created_at = DateTimeField(default=utcnow)
    # Migration progress counters, kept in the same transaction as the change (SPEC 7).
    users_total = IntegerField(default=0)
    users_first_login_done = IntegerField(default=0)

    class Meta:
        # The console finds contracts by name prefix, in (name, id) keyset order.
        indexes = ((("name", "id"), False),)

    @property
    def is_parent(self) -> bool:
        return self.parent_id is None

    @property
    def portal(self) -> str:
        return BUSINESS if self.parent_id is None else SDPF

    @classmethod
    def by_ecid(cls, ecid: str):
        return cls.get_or_none(cls.ecid == ecid.lower())


class Service(BaseModel):
    """A service of a contract (e.g. Smart Data Platform), shown on the dashboards and the console's
    contract page. ``status`` is the text users see, as the operator's file gives it
    (``お申し込み済み``; accounts/services.py imports it), shown as is in every language."""

    id = AutoField()
    contract = ForeignKeyField(Contract, backref="services", on_delete="CASCADE")
    name = CharField(max_length=255)
    status = CharField(max_length=100, default="")

    class Meta:
        indexes = ((("contract", "name"), True),)


class User(Principal, BaseModel):
    """An account of one of the two new portals."""

    KIND = "u"

    id = BigAutoField()
    portal = CharField(max_length=8)
    contract = ForeignKeyField(Contract, backref="users", on_delete="RESTRICT")
    login_id = CharField(max_length=255)
    login_id_key = CharField(max_length=255)  # lower(login_id): uniqueness and prefix search
    email = CharField(max_length=255)
    email_key = CharField(max_length=255)  # lower(email): comparison and prefix search
    name = CharField(max_length=255, default="")
    phone = CharField(max_length=64, default="")
    is_admin = BooleanField(default=False)
    origin = CharField(max_length=8, default=ORIGIN_NATIVE)
    # Migration history (SPEC 7): what the legacy portal had before the rules changed it.
    legacy_login_id = CharField(max_length=255, null=True)
    legacy_phone = CharField(max_length=64, null=True)
    migrated_at = DateTimeField(null=True)
    # First login: password set through the reset mail, 2-step set up, terms agreed.
    password_hash = CharField(max_length=255, null=True)
    password_changed_at = DateTimeField(null=True)
    first_login_done_at = DateTimeField(null=True)
    # Sign-in protection.
    failed_logins = IntegerField(default=0)  # consecutive wrong passwords
    locked_until = DateTimeField(null=True)
    disabled = BooleanField(default=False)
    last_login_at = DateTimeField(null=True)
    # Second-step failures are counted apart from passwords (SPEC 11.4): a correct password never
    # clears them.
    twostep_failures = IntegerField(default=0)
    twostep_locked_until = DateTimeField(null=True)
    # Two-step verification.
    twostep_method = CharField(max_length=8, null=True)  # mail | totp | None (not chosen yet)
    totp_secret = CharField(max_length=64, null=True)
    totp_last_step = IntegerField(null=True)  # last accepted time step
    twostep_last_used_at = DateTimeField(null=True)
    language = CharField(max_length=5, null=True)  # ja | en | None
    version = IntegerField(default=1)  # optimistic locking for console edits
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("portal", "login_id_key"), True),
            (("email_key",), False),
            (("name",), False),
            (("phone",), False),
            (("contract", "first_login_done_at"), False),
        )

    @property
    def first_login_done(self) -> bool:
        return self.first_login_done_at is not None

    def is_locked(self, now=None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    @classmethod
    def by_login_id(cls, portal: str, login_id: str):
        return first_row(cls, '"portal" = ? AND "login_id_key" = ?', portal, login_id.lower())

    @classmethod
    def login_id_taken(cls, portal: str, login_id: str, exclude_id=None) -> bool:
        q = cls.select(cls.id).where((cls.portal == portal) & (cls.login_id_key == login_id.lower()))
        if exclude_id is not None:
            q = q.where(cls.id != exclude_id)
        return q.exists()


class LegacyAccount(BaseModel):
    """A user record of the legacy Login Portal: the migration's input, kept for the legacy sign-in."""

    id = BigAutoField()
    login_id = CharField(max_length=255)
    login_id_key = CharField(max_length=255)
    contract_ecid = CharField(max_length=14)  # lower case
    parent_ecid = CharField(max_length=14, null=True)
    contract_name = CharField(max_length=255, default="")
    email = CharField(max_length=255)
    name = CharField(max_length=255, default="")
    phone = CharField(max_length=64, default="")  # after the phone rule (guide note 3)
    is_admin = BooleanField(default=False)
    password_hash = TextField(null=True)
    user = ForeignKeyField(User, null=True, backref="legacy_accounts", on_delete="SET NULL")
    source_line = IntegerField(null=True)
    migrated_at = DateTimeField(default=utcnow)
    # Set when the user confirmed (or corrected) the identity information in the legacy pop-up.
    confirmed_at = DateTimeField(null=True)
    # The legacy sign-in's lockout (SPEC 11.4), per legacy account.
    failed_logins = IntegerField(default=0)
    locked_until = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("login_id_key", "contract_ecid"), True),
            (("user",), False),
        )


class ResetToken(BaseModel):
    """A single-use link token (password reset / first login, e-mail change). Only its hash is stored."""

    id = BigAutoField()
    user = ForeignKeyField(User, backref="reset_tokens", on_delete="CASCADE")
    purpose = CharField(max_length=16, default="reset")  # reset | email_change
    token_hash = CharField(max_length=64, unique=True)
    new_email = CharField(max_length=255, null=True)  # for email_change
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)
    voided_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "purpose", "created_at"), False),)


class OneTimeCode(BaseModel):
    """A Mail OTP code: hashed, expiring, with a try counter that a re-send does not reset."""

    id = BigAutoField()
    user = ForeignKeyField(User, backref="one_time_codes", on_delete="CASCADE")
    code_hash = CharField(max_length=128)
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    attempts = IntegerField(default=0)
    used_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "created_at"), False),)


class BackupCode(BaseModel):
    id = BigAutoField()
    user = ForeignKeyField(User, backref="backup_codes", on_delete="CASCADE")
    code_hash = CharField(max_length=128)
    created_at = DateTimeField(default=utcnow)
    used_at = DateTimeField(null=True)


class TrustedBrowser(BaseModel):
    """A browser that may skip the second step until expires_at; revocable."""

    id = BigAutoField()
    user = ForeignKeyField(User, backref="trusted_browsers", on_delete="CASCADE")
    token_hash = CharField(max_length=64, unique=True)
    label = CharField(max_length=255, default="")  # user agent summary shown in the profile
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    expires_at = DateTimeField()
    revoked_at = DateTimeField(null=True)


class TermsVersion(BaseModel):
    """A published version of the terms; it is in force from ``published_at`` until a newer one is."""

    id = AutoField()
    version = IntegerField(unique=True)
    title = CharField(max_length=255)
    body = TextField()  # plain text or Markdown, rendered safely (accounts.terms.render)
    published_at = DateTimeField(default=utcnow)
    published_by = CharField(max_length=255, default="")
    # Kept in the transaction of each acceptance: the console never counts a million rows.
    accepted_count = IntegerField(default=0)

    @classmethod
    def current(cls):
        return (cls.select().where(cls.published_at <= utcnow())
                .order_by(cls.version.desc()).first())


class TermsAcceptance(BaseModel):
    id = BigAutoField()
    user = ForeignKeyField(User, backref="terms_acceptances", on_delete="CASCADE")
    terms = ForeignKeyField(TermsVersion, on_delete="RESTRICT")
    accepted_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "terms"), True),)


class MigrationPeriod(BaseModel):
    """The one migration period (row id 1). No row means no period: behaves as 'after'."""

    id = IntegerField(primary_key=True)
    start_at = DateTimeField()
    end_at = DateTimeField()
    updated_at = DateTimeField(default=utcnow)
    updated_by = CharField(max_length=255, default="")


class SiteSetting(BaseModel):
    """A fact about this installation kept in the database (e.g. that the demo data was loaded)."""

    key = CharField(max_length=64, primary_key=True)
    value = TextField(default="")
    updated_at = DateTimeField(default=utcnow)


class Ticket(BaseModel):
    id = BigAutoField()
    user = ForeignKeyField(User, null=True, backref="tickets", on_delete="CASCADE")
    legacy_account = ForeignKeyField(LegacyAccount, null=True, backref="tickets", on_delete="CASCADE")
    filed_from = CharField(max_length=8)  # business | sdpf | legacy
    subject = CharField(max_length=255)
    body = TextField()
    status = CharField(max_length=16, default="open")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "created_at"), False),)


class Staff(Principal, BaseModel):
    """Carrier staff (operator, helpdesk). A different kind of account from portal users."""

    KIND = "s"

    id = AutoField()
    login_id = CharField(max_length=255)
    login_id_key = CharField(max_length=255, unique=True)
    role = CharField(max_length=16)  # operator | helpdesk
    password_hash = CharField(max_length=255)
    totp_secret = CharField(max_length=64, null=True)
    totp_confirmed_at = DateTimeField(null=True)
    totp_last_step = IntegerField(null=True)
    failed_logins = IntegerField(default=0)
    locked_until = DateTimeField(null=True)
    twostep_failures = IntegerField(default=0)
    twostep_locked_until = DateTimeField(null=True)
    disabled = BooleanField(default=False)
    language = CharField(max_length=5, null=True)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)

    @classmethod
    def by_login_id(cls, login_id: str):
        return cls.get_or_none(cls.login_id_key == login_id.lower())


def principal_model(kind: str):
    """The model whose session identities start with ``kind`` ("u" / "s"), or None."""
    return {User.KIND: User, Staff.KIND: Staff}.get(kind)


class Mail(BaseModel):
    """The outbox: a mail is written in the transaction of the change that caused it."""

    id = BigAutoField()
    message_id = CharField(max_length=255, unique=True)
    kind = CharField(max_length=32)  # reset | otp | email_changed | login_id_changed | notice | ...
    user = ForeignKeyField(User, null=True, backref="mails", on_delete="SET NULL")
    recipient = CharField(max_length=255)
    subject = CharField(max_length=255)
    body_text = TextField()
    body_html = TextField(null=True)
    status = CharField(max_length=8, default="queued")  # queued | sent | failed
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    lease_until = DateTimeField(null=True)
    last_error = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "next_attempt_at"), False),
            (("user", "created_at"), False),
        )


class MailAttempt(BaseModel):
    """One SMTP delivery attempt and the server's answer (shown to the helpdesk)."""

    id = BigAutoField()
    mail = ForeignKeyField(Mail, backref="delivery_attempts", on_delete="CASCADE")
    at = DateTimeField(default=utcnow)
    ok = BooleanField()
    smtp_code = IntegerField(null=True)
    smtp_answer = TextField(default="")


class AuditEntry(BaseModel):
    """Append-only: nothing in the application updates or deletes these rows."""

    id = BigAutoField()
    at = DateTimeField(default=utcnow)
    actor_kind = CharField(max_length=8)  # user | staff | system
    actor_id = IntegerField(null=True)
    actor_label = CharField(max_length=255, default="")
    action = CharField(max_length=64)
    target_user = ForeignKeyField(User, null=True, backref="audit_entries", on_delete="SET NULL")
    target_contract = ForeignKeyField(Contract, null=True, on_delete="SET NULL")
    field = CharField(max_length=64, null=True)
    old_value = TextField(null=True)
    new_value = TextField(null=True)
    ip = CharField(max_length=64, null=True)
    detail = TextField(null=True)

    class Meta:
        indexes = (
            (("target_user", "at"), False),
            (("target_contract", "at"), False),
            (("action", "at"), False),
            (("at",), False),
        )


class WebSession(BaseModel):
    """A signed-in (or signing-in) browser session (SPEC 11.5). The cookie holds a random key;
    only its SHA-256 is stored. ``principal`` is ``u:<id>`` or ``s:<id>``; ``data`` is the Flask
    session (pending sign-in, CSRF token, a TOTP secret being set up)."""

    id = BigAutoField()
    key_hash = CharField(max_length=64, unique=True)
    principal = CharField(max_length=24, null=True)
    signed_in = BooleanField(default=False)  # False while a sign-in is still pending
    data = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    last_seen_at = DateTimeField(default=utcnow)
    ip = CharField(max_length=64, default="")
    user_agent = CharField(max_length=255, default="")

    class Meta:
        table_name = "web_session"
        indexes = ((("principal",), False), (("last_seen_at",), False))


class IdentityRequest(BaseModel):
    """A reset request (identity check) or an "ask my administrator" request, as typed.

    The web request only records it; the worker matches it and writes the mail (SPEC 11.8), so the
    answer takes the same time whether or not anything matched, and no web worker waits.
    """

    id = BigAutoField()
    kind = CharField(max_length=16)  # reset | ask_admin
    portal = CharField(max_length=8)
    login_id = CharField(max_length=255)
    email = CharField(max_length=255, default="")
    name = CharField(max_length=255, default="")
    phone = CharField(max_length=64, default="")
    message = TextField(default="")
    ip = CharField(max_length=64, default="")
    created_at = DateTimeField(default=utcnow)
    processed_at = DateTimeField(null=True)
    outcome = CharField(max_length=32, null=True)

    class Meta:
        indexes = ((("processed_at", "id"), False),)


class BulkUpload(BaseModel):
    """A CSV of corrections uploaded to the console (SPEC 14), kept so that its preview pages,
    survives a reload and is applied later. It belongs to the principal who uploaded it."""

    id = BigAutoField()
    owner_kind = CharField(max_length=8)  # user | staff (accounts.audit.actor_fields)
    owner_id = BigIntegerField()
    created_at = DateTimeField(default=utcnow)
    file_name = CharField(max_length=255)
    encoding = CharField(max_length=16)
    columns = CharField(max_length=255)  # the file's columns in file order, comma separated
    # Counts of the preview (rows that will change, are unchanged, have errors).
    rows_total = IntegerField(default=0)
    rows_change = IntegerField(default=0)
    rows_unchanged = IntegerField(default=0)
    rows_error = IntegerField(default=0)
    state = CharField(max_length=12, default="previewed")  # previewed | applying | applied
    apply_started_at = DateTimeField(null=True)
    applied_at = DateTimeField(null=True)
    # Counts of the apply, recomputed from the rows after each step.
    rows_applied = IntegerField(default=0)
    rows_stale = IntegerField(default=0)
    rows_refused = IntegerField(default=0)  # refused at apply (e.g. login ID taken since), or gone

    class Meta:
        indexes = ((("owner_kind", "owner_id", "id"), False),)


class BulkRow(BaseModel):
    """One data row of a BulkUpload: the values given, what the user had at preview, the errors
    per cell and, once applied, what happened."""

    id = BigAutoField()
    upload = ForeignKeyField(BulkUpload, backref="rows", on_delete="CASCADE")
    line = IntegerField()  # the file line where the row starts (the header is line 1)
    login_id = TextField()
    portal = TextField(default="")  # as given; blank: decided by the login ID
    # The corrections as given; None = blank cell or no such column (the value stays).
    new_email = TextField(null=True)
    new_login_id = TextField(null=True)
    name = TextField(null=True)
    phone = TextField(null=True)
    # The user found at preview, its version then (stale rows are refused) and its values then.
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")
    user_version = IntegerField(null=True)
    user_portal = CharField(max_length=8, null=True)
    current_email = TextField(null=True)
    current_login_id = TextField(null=True)
    current_name = TextField(null=True)
    current_phone = TextField(null=True)
    status = CharField(max_length=10)  # change | unchanged | error
    changes = CharField(max_length=64, default="")  # the fields that change, comma separated
    errors = TextField(null=True)  # JSON: column -> [code, argument...]
    result = CharField(max_length=10, null=True)  # applied | stale | refused | not_found
    result_detail = TextField(null=True)  # refused: "field:code"
    applied_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("upload", "line"), True),
            (("upload", "status", "line"), False),
        )


ALL_MODELS = [
    Contract, Service, User, LegacyAccount, ResetToken, OneTimeCode, BackupCode, TrustedBrowser,
    TermsVersion, TermsAcceptance, MigrationPeriod, Ticket, Staff, Mail, MailAttempt, AuditEntry,
    WebSession, IdentityRequest, SiteSetting,
    BulkUpload, BulkRow,
]

