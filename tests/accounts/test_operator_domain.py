"""Operator readiness rules as functions (SPEC 12): terms rendering and counters, contract search,
the administrator role, staff guards, and the period rule that nobody sends a migrated user a
first-login link or a reminder before the period, in all three phases with a frozen clock."""
import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from accounts import console, contracts, period, recovery, staff, terms
from accounts.models import AuditEntry, Mail, Staff, TermsVersion, User
from tests.helpers import gen_contract, gen_user
from tests.legacy_helpers import AFTER_AT, BEFORE_AT, DURING_AT, gen_legacy, set_period
from tests.web.admin_helpers import make_world

# --- terms ----------------------------------------------------------------------------------------


@given(st.text())
def test_rendered_terms_never_contain_markup_of_their_own(text):
    html = str(terms.render(text))
    stripped = html
    for tag in ("p", "br", "ul", "ol", "li", "strong", "h3", "h4", "h5"):
        stripped = stripped.replace(f"<{tag}>", "").replace(f"</{tag}>", "")
    assert "<" not in stripped and ">" not in stripped


def test_rendered_terms_understand_a_small_markdown_subset_and_escape_html():
    text = "# 第1章\n\n第1条 **重要** です\n2行目\n\n- a\n- b\n1. x\n<script>alert(1)</script>"
    html = str(terms.render(text))
    assert "<h3>第1章</h3>" in html
    assert "<p>第1条 <strong>重要</strong> です<br>2行目</p>" in html
    assert "<ul><li>a</li><li>b</li></ul><ol><li>x</li></ol>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html


def test_versions_are_numbered_in_order_and_acceptances_are_counted_once(db):
    first = terms.publish("第1版", "本文1", actor="cli")
    second = terms.publish("第2版", "本文2", actor="cli")
    assert (first.version, second.version) == (1, 2)
    user = gen_user()
    assert terms.pending_for(user).version == 2
    terms.accept(user, second)
    terms.accept(user, second)  # a double submit
    assert TermsVersion.get_by_id(second.id).accepted_count == 1
    assert terms.pending_for(user) is None
    terms.recount()
    assert TermsVersion.get_by_id(second.id).accepted_count == 1


def test_nothing_to_agree_while_no_version_is_in_force(db):
    assert terms.pending_for(gen_user()) is None and terms.in_force() is None


# --- contracts ------------------------------------------------------------------------------------

def test_contract_search_by_ecid_or_name_prefix_in_keyset_pages(db):
    parent = gen_contract(ecid="ecid5000000000", name="あおぞら商事")
    for i in range(1, 8):
        gen_contract(parent=parent, ecid=f"ecid500000000{i}", name=f"あおば物流{i}")
    op = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    page1 = contracts.search(op, "ECID50000000", limit=3)
    assert [c.ecid for c in page1.contracts] == ["ecid5000000000", "ecid5000000001", "ecid5000000002"]
    page2 = contracts.search(op, "ecid50000000", after=page1.next_after, limit=3)
    assert [c.ecid for c in page2.contracts] == ["ecid5000000003", "ecid5000000004", "ecid5000000005"]
    names = contracts.search(op, "あおば", limit=5)
    assert names.by == "name" and [c.name for c in names.contracts] == [f"あおば物流{i}" for i in range(1, 6)]
    rest = contracts.search(op, "あおば", after=names.next_after, limit=5)
    assert [c.name for c in rest.contracts] == ["あおば物流6", "あおば物流7"] and rest.next_after is None
    assert rest.contracts[0].parent_name == "あおぞら商事"
    assert contracts.search(op, "zz").contracts == []


def test_contract_search_and_pages_follow_the_scope(db):
    w = make_world()
    assert {c.ecid for c in contracts.search(w.parent_admin).contracts} == {w.parent.ecid, w.child.ecid}
    assert {c.ecid for c in contracts.search(w.child_admin).contracts} == {w.child.ecid}
    assert len(contracts.search(w.helpdesk).contracts) == 4
    page = contracts.page(w.child_admin, w.child.ecid)
    assert page.parent.ecid == w.parent.ecid and not page.parent_visible
    assert contracts.page(w.parent_admin, w.child.ecid).parent_visible
    assert [a.login_id for a in contracts.page(w.helpdesk, w.child.ecid).admins] == ["cadmin"]
    for who in (w.parent_admin, w.child_admin, w.plain):
        with pytest.raises(contracts.NotFound):
            contracts.page(who, w.other_child.ecid)


def test_only_the_operator_renames_and_changes_the_admin_role(db, app_ctx):
    w = make_world()
    for who in (w.helpdesk, w.parent_admin, w.child_admin):
        with pytest.raises(contracts.NotFound):
            contracts.rename(who, w.child.ecid, "新しい名前")
        with pytest.raises(contracts.NotFound):
            contracts.set_admin(who, w.child.ecid, grant=True, login_id="plain", base_url="http://x")
    renamed = contracts.rename(w.operator, w.child.ecid, "  新しい名前 ")
    assert renamed.name == "新しい名前"
    with pytest.raises(contracts.ContractError) as exc:
        contracts.rename(w.operator, w.child.ecid, "\u200b危険")
    assert exc.value.code == "name_format"


def test_granting_and_revoking_the_admin_role_tells_the_user_and_is_audited(db, app_ctx):
    w = make_world()
    user = contracts.set_admin(w.operator, w.child.ecid, grant=True, login_id="PLAIN",
                               base_url="http://portal.example")
    assert user.is_admin and user.version == 2
    mail = Mail.get(Mail.kind == "admin_role")
    assert mail.recipient == user.email and "管理者に設定されました" in mail.subject
    assert "http://portal.example/admin/" in mail.body_text and w.child.name in mail.body_text
    entry = AuditEntry.get(AuditEntry.action == "admin_granted")
    assert entry.target_user_id == user.id and (entry.old_value, entry.new_value) == ("False", "True")
    with pytest.raises(contracts.ContractError) as exc:
        contracts.set_admin(w.operator, w.child.ecid, grant=True, login_id="plain", base_url="http://x")
    assert exc.value.code == "already_admin"
    # a user of another contract is not found through this contract
    with pytest.raises(contracts.ContractError) as exc:
        contracts.set_admin(w.operator, w.child.ecid, grant=True, login_id="target-other", base_url="x")
    assert exc.value.code == "user_not_found"
    contracts.set_admin(w.operator, w.child.ecid, grant=False, user_id=user.id, base_url="http://x")
    assert not User.get_by_id(user.id).is_admin
    assert Mail.select().where(Mail.kind == "admin_role").count() == 2


def test_sdpf_help_names_the_contract_admins_and_the_partner(db):
    w = make_world()
    help_ = contracts.help_contacts(w.plain)
    assert help_.partner_name == "親契約A" and help_.contract_name == "子契約A1"
    assert help_.admin_names == ["山田 太郎"]  # cadmin's name (first login done)
    assert contracts.help_contacts(w.parent_admin).partner_name is None


# --- staff ----------------------------------------------------------------------------------------

def test_an_operator_cannot_disable_themselves_nor_the_last_enabled_operator(db):
    op = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    other = Staff.create(login_id="op2", login_id_key="op2", role="operator", password_hash="x")
    with pytest.raises(staff.StaffError) as exc:
        staff.apply(op, op.id, staff.DISABLE)
    assert exc.value.code == "self"
    staff.apply(op, other.id, staff.DISABLE)
    with pytest.raises(staff.StaffError) as exc:
        staff.apply("cli", op.id, staff.DISABLE)
    assert exc.value.code == "last_operator"
    assert not Staff.get_by_id(op.id).disabled


# --- before / during / after: nobody moves migrated users early ---------------------------------

@pytest.mark.parametrize("when, allowed", [(BEFORE_AT, False), (DURING_AT, True), (AFTER_AT, True)])
def test_a_reset_link_for_a_migrated_user_only_from_the_start_of_the_period(db, app, when, allowed):
    set_period()
    migrated = gen_legacy(login_id="moved@example.jp").user
    native = gen_user(login_id="native@example.jp")
    w = make_world()
    with app.app_context(), time_machine.travel(when, tick=False):
        for sender in (None, w.operator):  # the user's own request path and the operator alike
            if allowed:
                recovery.send_reset_link(migrated, config=app.config, base_url="http://x", actor=sender)
            else:
                with pytest.raises(period.NotYetOpen) as exc:
                    recovery.send_reset_link(migrated, config=app.config, base_url="http://x",
                                             actor=sender)
                assert exc.value.opens_at == period.current().start_at
        with pytest.raises(console.Invalid) if not allowed else _nothing():
            console.send_reset_link(w.operator, migrated.id, config=app.config, base_url="http://x")
        # native users are never held back
        recovery.send_reset_link(native, config=app.config, base_url="http://x", actor=w.operator)
    sent_to_migrated = Mail.select().where(Mail.user == migrated).count()
    assert sent_to_migrated == (3 if allowed else 0)


@pytest.mark.parametrize("when, allowed", [(BEFORE_AT, False), (DURING_AT, True), (AFTER_AT, True)])
def test_reminders_to_migrated_users_only_from_the_start_of_the_period(db, app, when, allowed):
    set_period()
    w = make_world()  # target_child is a migrated user with a pending first login
    native = gen_user(w.child, login_id="native-pending")
    with app.app_context(), time_machine.travel(when, tick=False):
        if allowed:
            assert console.remind(w.parent_admin, [w.target_child.id, native.id], base_url="http://x") == 2
        else:
            with pytest.raises(console.Invalid) as exc:
                console.remind(w.operator, [w.target_child.id, native.id], base_url="http://x")
            assert exc.value.code == "not_yet_open"
            assert Mail.select().count() == 0
            assert console.remind(w.operator, [native.id], base_url="http://x") == 1


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
