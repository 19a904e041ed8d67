"""Users imported with `import-portal-users` and a password hash sign in through the portal's own
sign-in with that password, without a reset; bcrypt and Werkzeug hashes become argon2id."""
import pytest

from accounts.models import AuditEntry, User
from tests.accounts.test_migration_command import write_csv
from tests.accounts.test_portal_users_command import HASHES, PASSWORD
from tests.web.portal_journey import Portal, ensure_terms

PARENT, CHILD = "ecid1000000001", "ecid2000000001"


@pytest.mark.parametrize("kind", sorted(HASHES))
@pytest.mark.parametrize("portal", ["business", "sdpf"])
def test_an_imported_hash_signs_in_and_is_argon2id_afterwards(client, db, runner, tmp_path, portal, kind):
    ensure_terms()
    ecid, parent = (PARENT, "") if portal == "business" else (CHILD, PARENT)
    rows = [["Imported-User", "imported@example.jp", "山田 太郎", "0312345678", ecid, parent, "契約", "0",
             HASHES[kind](PASSWORD)]]
    result = runner.invoke(args=["import-portal-users", write_csv(tmp_path / "u.csv", rows),
                                 "--portal", portal])
    assert result.exit_code == 0, result.output
    user = User.by_login_id(portal, "imported-user")
    assert user.first_login_done_at is not None

    p = Portal(client, portal)
    refused = p.sign_in("imported-user", PASSWORD + "x")
    assert refused.status_code != 303
    assert User.get_by_id(user.id).password_hash == user.password_hash   # a wrong password changes nothing

    r = p.sign_in("IMPORTED-user", PASSWORD)
    # Straight on to the second step (set up at this first sign-in): no reset, no first-login pages.
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/{portal}/signin/method")
    stored = User.get_by_id(user.id).password_hash
    assert stored.startswith("$argon2id$")
    rehashed = AuditEntry.select().where((AuditEntry.target_user == user.id)
                                         & (AuditEntry.action == "password_rehashed")).count()
    assert rehashed == (0 if kind == "argon2" else 1)
    if kind == "argon2":
        assert stored == user.password_hash

    # Again, now with the argon2id hash.
    again = Portal(client.application.test_client(), portal).sign_in("imported-user", PASSWORD)
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/{portal}/signin/method")


def test_an_imported_user_without_a_hash_cannot_sign_in_until_a_reset(client, db, runner, tmp_path):
    rows = [["nopass", "nopass@example.jp", "佐藤 次郎", "0312345678", PARENT, "", "契約", "0", ""]]
    assert runner.invoke(args=["import-portal-users", write_csv(tmp_path / "u.csv", rows),
                               "--portal", "business"]).exit_code == 0
    user = User.by_login_id("business", "nopass")
    assert user.password_hash is None and user.first_login_done_at is None
    assert Portal(client, "business").sign_in("nopass", PASSWORD).status_code != 303
