"""Demo data (idempotent): contract trees, users in every state, staff, terms, services."""
import datetime
import hashlib
import secrets

from . import outbox, site
from .clock import utcnow
from .db import database
from .models import (
    MAIL_OTP,
    ORIGIN_LEGACY,
    ORIGIN_NATIVE,
    TOTP,
    Contract,
    LegacyAccount,
    Mail,
    MailAttempt,
    ResetToken,
    Service,
    Staff,
    TermsVersion,
    User,
)
from .passwords import hasher

DEMO_PASSWORD = "Demo-pass1"
STAFF_PASSWORD = "Demo-staff-pass1"
# A fixed TOTP secret for the demo accounts, so that the README can say how to sign in.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

CONTRACTS = [
    # ecid, parent ecid, name, services (name, status as shown to users)
    ("ecid1000000001", None, "サンプルパートナー株式会社",
     [("Smart Data Platform", "お申し込み済み"), ("Flexible InterConnect", "手続き中")]),
    ("ecid1000000002", "ecid1000000001", "子契約 株式会社みどり商事",
     [("Smart Data Platform", "お申し込み済み")]),
    ("ecid1000000003", "ecid1000000001", "子契約 あおば物流株式会社",
     [("Smart Data Platform", "お申し込み済み")]),
    ("ecid2000000001", None, "直販 ひかり工業株式会社", [("Smart Data Platform", "お申し込み済み")]),
]


def _user(contract, login_id, email, name, phone="0312345678", **fields):
    portal = contract.portal
    existing = User.by_login_id(portal, login_id)
    if existing:
        return existing, False
    user = User.create(portal=portal, contract=contract, login_id=login_id, login_id_key=login_id.lower(),
                       email=email, email_key=email.lower(), name=name, phone=phone, **fields)
    Contract.update(users_total=Contract.users_total + 1,
                    users_first_login_done=Contract.users_first_login_done
                    + (1 if user.first_login_done_at else 0)).where(Contract.id == contract.id).execute()
    return user, True


def load_demo() -> list[str]:
    now = utcnow()
    pw = hasher().hash(DEMO_PASSWORD)
    done = {"password_hash": pw, "password_changed_at": now, "first_login_done_at": now}
    with database.atomic():
        contracts = {}
        for ecid, parent, name, services in CONTRACTS:
            c = Contract.by_ecid(ecid)
            if c is None:
                c = Contract.create(ecid=ecid, name=name,
                                    parent=contracts[parent] if parent else None)
            contracts[ecid] = c
            for service, status in services:
                Service.get_or_create(contract=c, name=service, defaults={"status": status})

        if not TermsVersion.select().exists():
            TermsVersion.create(version=1, title="カスタマポータル規約 第1版",
                                body="本規約は、カスタマポータルの利用条件を定めるものです。\n"
                                     "第1条（適用）本規約は、本サービスの利用に関する一切の関係に適用されます。\n"
                                     "第2条（アカウント管理）利用者はログインID、パスワード及び二段階認証を"
                                     "自己の責任において管理するものとします。",
                                published_at=now - datetime.timedelta(days=30))
        terms = TermsVersion.current()

        p, c1, c2, d = (contracts[e] for e in ("ecid1000000001", "ecid1000000002", "ecid1000000003",
                                               "ecid2000000001"))
        # Parent admin (first login done, Mail OTP) and a native Business Portal user.
        admin, created = _user(p, "partner-admin@example.jp", "partner-admin@example.jp", "管理 太郎",
                               is_admin=True, twostep_method=TOTP, totp_secret=DEMO_TOTP_SECRET,
                               origin=ORIGIN_NATIVE, **done)
        if created:
            from .models import TermsAcceptance
            TermsAcceptance.create(user=admin, terms=terms)
        _user(p, "native-user@example.jp", "native-user@example.jp", "山田 花子", twostep_method=MAIL_OTP,
              **done)
        # Migrated users in every state.
        pending, _ = _user(p, "sample@ntt.com_ecid1000000001", "sample@example.jp", "佐藤\u3000一郎",
                           phone="0312345678", origin=ORIGIN_LEGACY, legacy_login_id="sample@ntt.com",
                           legacy_phone="03-1234-ｱｲｳ", migrated_at=now)
        locked, _ = _user(p, "locked-user", "locked@example.jp", "鈴木 次郎", origin=ORIGIN_LEGACY,
                          legacy_login_id="locked-user", migrated_at=now, failed_logins=10,
                          locked_until=now + datetime.timedelta(minutes=30), **done,
                          twostep_method=MAIL_OTP)
        expired, created_expired = _user(c1, "midori-user1", "midori1@example.jp", "田中 三郎",
                                         origin=ORIGIN_LEGACY, legacy_login_id="midori-user1",
                                         migrated_at=now)
        if created_expired:
            ResetToken.create(user=expired, purpose="reset",
                              token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                              created_at=now - datetime.timedelta(hours=2),
                              expires_at=now - datetime.timedelta(hours=1, minutes=30))
        bounced, created_bounced = _user(c1, "midori-user2", "no-such-mailbox@invalid.example", "高橋 四郎",
                                         origin=ORIGIN_LEGACY, legacy_login_id="midori-user2",
                                         migrated_at=now)
        if created_bounced:
            m = outbox.enqueue(recipient=bounced.email, subject="【Smart Data Platform】パスワード再設定",
                               body_text="(demo) reset mail", kind="reset", user=bounced)
            MailAttempt.create(
                mail=m, ok=False, smtp_code=550,
                smtp_answer="5.1.1 <no-such-mailbox@invalid.example>: Recipient address rejected")
            Mail.update(status="failed", attempts=1, last_error="550 5.1.1 Recipient address rejected") \
                .where(Mail.id == m.id).execute()
        child_admin, _ = _user(c1, "midori-admin", "midori-admin@example.jp", "伊藤 五郎", is_admin=True,
                               twostep_method=TOTP, totp_secret=DEMO_TOTP_SECRET, origin=ORIGIN_LEGACY,
                               legacy_login_id="midori-admin", migrated_at=now, **done)
        _user(c2, "aoba-user1", "aoba1@example.jp", "渡辺 六郎", origin=ORIGIN_LEGACY,
              legacy_login_id="aoba-user1", migrated_at=now)
        _user(d, "hikari-admin", "hikari-admin@example.jp", "小林 七海", is_admin=True,
              twostep_method=MAIL_OTP, **done)
        for u in User.select().where(User.origin == ORIGIN_LEGACY):
            LegacyAccount.get_or_create(
                login_id_key=(u.legacy_login_id or u.login_id).lower(), contract_ecid=u.contract.ecid,
                defaults={"login_id": u.legacy_login_id or u.login_id, "email": u.email, "name": u.name,
                          "phone": u.phone, "is_admin": u.is_admin, "user": u,
                          "parent_ecid": u.contract.parent.ecid if u.contract.parent_id else None,
                          "contract_name": u.contract.name, "password_hash": pw})
        site.mark_demo_loaded()  # the footer says "(demo)" from now on (SPEC 12)
        for login_id, role in (("operator", "operator"), ("helpdesk", "helpdesk")):
            if not Staff.select().where(Staff.login_id_key == login_id).exists():
                Staff.create(login_id=login_id, login_id_key=login_id, role=role,
                             password_hash=hasher().hash(STAFF_PASSWORD), totp_secret=DEMO_TOTP_SECRET,
                             totp_confirmed_at=now)

    return [
        "Demo data is loaded (running this again changes nothing).",
        f"Password of every demo account that has one: {DEMO_PASSWORD}  (staff: {STAFF_PASSWORD})",
        f"TOTP secret of the TOTP demo accounts (add it to an authenticator app): {DEMO_TOTP_SECRET}",
        "Business Portal /business/:",
        "  partner-admin@example.jp  parent contract admin (TOTP), console at /admin/",
        "  native-user@example.jp    native user (Mail OTP: code at /dev/mail)",
        "  sample@ntt.com_ecid1000000001  migrated, first login pending (login ID changed by the migration;",
        "                            name 佐藤\u3000一郎 with a full-width space, e-mail sample@example.jp,",
        "                            phone 0312345678): use 'reset your password'",
        "  locked-user               locked after failed sign-ins",
        "  hikari-admin              direct customer admin (Mail OTP)",
        "SDPF Portal /sdpf/:",
        "  midori-admin              child contract admin (TOTP)",
        "  midori-user1              first login pending, reset link expired (e-mail midori1@example.jp)",
        "  midori-user2              first login pending, reset mail delivery failed",
        "  aoba-user1                first login pending (e-mail aoba1@example.jp)",
        "Staff /admin/login: operator, helpdesk (TOTP with the secret above)",
        f"Legacy Login Portal /legacy/: legacy login IDs above with password {DEMO_PASSWORD}",
    ]
