"""gen_* factories for test data, and small helpers for forms."""
import itertools
import logging
import re

from accounts.models import ORIGIN_LEGACY, ORIGIN_NATIVE, Contract, User
from accounts.passwords import hasher

_seq = itertools.count(1)


def gen_contract(parent=None, ecid=None, name=None) -> Contract:
    n = next(_seq)
    ecid = ecid or f"ecid{(9000000000 + n):010d}"
    return Contract.create(ecid=ecid.lower(), parent=parent, name=name or f"契約 {n}")


def gen_user(contract=None, login_id=None, email=None, name="山田 太郎", phone="0312345678",
             password=None, first_login_done=False, legacy=False, **fields) -> User:
    from accounts.clock import utcnow

    contract = contract or gen_contract()
    n = next(_seq)
    login_id = login_id or f"user{n}@example.jp"
    email = email or f"user{n}@example.jp"
    if password:
        fields.setdefault("password_hash", hasher().hash(password))
        fields.setdefault("password_changed_at", utcnow())
    if first_login_done:
        fields.setdefault("first_login_done_at", utcnow())
    user = User.create(portal=contract.portal, contract=contract, login_id=login_id,
                       login_id_key=login_id.lower(), email=email, email_key=email.lower(), name=name,
                       phone=phone, origin=ORIGIN_LEGACY if legacy else ORIGIN_NATIVE, **fields)
    Contract.update(users_total=Contract.users_total + 1,
                    users_first_login_done=Contract.users_first_login_done + (1 if first_login_done else 0)
                    ).where(Contract.id == contract.id).execute()
    return user


def csrf_token(html: str) -> str:
    """The CSRF token of a page (from the hidden field or the hx-headers attribute)."""
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s<>\"]+", text)


def run_worker(app) -> dict:
    """One round of the worker beside the web (``flask deliver-mail``): answers reset and
    ask-my-admin requests; delivery is left to the tests that run an SMTP server."""
    from accounts import background

    with app.app_context():
        return background.run_round(None, app.config)


class Statements:
    """The statements peewee sends (its DEBUG log): (verb, first table named, SQL)."""

    def __init__(self):
        self.logger = logging.getLogger("peewee")
        self.seen = []

    def emit(self, record):
        sql = record.msg[0] if isinstance(record.msg, tuple) else str(record.msg)
        verb = sql.split(None, 1)[0].upper()
        table = re.search(r'"(\w+)"', sql.split(" FROM ", 1)[-1] if verb == "SELECT" else sql)
        self.seen.append((verb, table.group(1) if table else "", sql))

    def __enter__(self):
        handler = logging.Handler()
        handler.emit = self.emit
        self.handler, self.level = handler, self.logger.level
        self.logger.addHandler(handler)
        self.logger.setLevel(logging.DEBUG)
        return self.seen

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
