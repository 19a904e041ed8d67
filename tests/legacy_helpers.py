"""Factories for the legacy Login Portal's tests: legacy accounts with real hashes, period settings."""
import datetime

from argon2 import PasswordHasher

from accounts import period
from accounts.models import LegacyAccount
from tests.helpers import gen_contract, gen_user

PASSWORD = "Legacy-pass1"
START = datetime.datetime(2026, 12, 1, 0, 0, tzinfo=period.JST)
END = datetime.datetime(2027, 3, 31, 23, 59, tzinfo=period.JST)
BEFORE_AT = START - datetime.timedelta(days=3)
DURING_AT = START + datetime.timedelta(days=10)
AFTER_AT = END + datetime.timedelta(days=1)

_cheap_argon2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def set_period():
    period.set_period(START.astimezone(datetime.UTC).replace(tzinfo=None),
                      END.astimezone(datetime.UTC).replace(tzinfo=None))


def gen_legacy(user=None, login_id=None, password=PASSWORD, password_hash=None, contract=None, **fields):
    """A migrated user and its legacy account (hash in argon2 unless given)."""
    if user is None:
        contract = contract or gen_contract()
        user = gen_user(contract=contract, login_id=fields.pop("new_login_id", None) or login_id,
                        legacy=True, legacy_login_id=login_id, **fields)
    legacy_id = login_id or user.legacy_login_id or user.login_id
    if password_hash is None and password is not None:
        password_hash = _cheap_argon2.hash(password)
    return LegacyAccount.create(
        login_id=legacy_id, login_id_key=legacy_id.lower(), contract_ecid=user.contract.ecid,
        parent_ecid=user.contract.parent.ecid if user.contract.parent_id else None,
        contract_name=user.contract.name, email=user.email, name=user.name, phone=user.phone,
        password_hash=password_hash, user=user)
