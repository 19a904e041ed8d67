"""SPEC 11.2: GET, HEAD and OPTIONS change nothing, whoever sends them, whatever they carry.

Every route of the URL map (portals, console, legacy portal, local mailbox, root) is sent a GET and
a HEAD carrying the form its POST takes, in the body and in the query string, with a valid CSRF
token and right answers (the right password, a right TOTP code, the mailed one-time password, the
current terms version, a live reset link...), and an OPTIONS, by every kind of principal: anonymous,
half-way through each sign-in step, signed in to each portal, each console role, staff between the
password and the code, and the legacy portal's signed-in account during the migration period.

After each request the database must be as before: the row count of every table, the outbox, the
counters an attacker would move (failed sign-ins, second-step failures, code tries, used backup
codes and links, two-step secrets), and every other column; only the session row's last-seen time
and data (a read's bookkeeping) may change. A route argument without a test value fails.
"""
import pytest

from tests.security.principals import (
    KINDS,
    WALK_DELAY,
    MissingTestValue,
    build_principal,
    build_world,
    differences,
    form_for_rule,
    has_form,
    open_kwargs,
    rules,
    snapshot,
    travel,
    url_of,
)

pytestmark = pytest.mark.usefixtures("db")

METHODS = ("GET", "HEAD", "OPTIONS")


@pytest.fixture
def app(make_app):
    # Rate limits off: hundreds of requests from one address must not turn into 429 answers.
    return make_app(RATELIMIT_ENABLED=False)


def test_every_route_has_test_values_and_every_post_route_a_form(app):
    with travel() as clock:
        world = build_world(app, clock)
        p = build_principal(app, world, "anonymous")
        problems = []
        for rule in rules(app):
            try:
                url_of(rule, p, world)
            except MissingTestValue as exc:
                problems.append(str(exc))
            if "POST" in rule.methods and not has_form(rule.endpoint):
                problems.append(f"no form for POST {rule.endpoint} ({rule.rule}): add the fields it takes "
                                "to tests/security/principals.py PORTAL_FORMS or OTHER_FORMS")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", KINDS)
def test_get_head_and_options_change_nothing(app, kind):
    with travel() as clock:
        world = build_world(app, clock)
        p = build_principal(app, world, kind)
        clock.shift(WALK_DELAY)
        assert p.client.get(p.home).status_code == 200, f"{kind} is not where it should be ({p.home})"
        # Every address and form first (building them must not count as a request's write).
        plan = []
        for rule in rules(app):
            try:
                url = url_of(rule, p, world)
            except MissingTestValue as exc:
                pytest.fail(str(exc))
            plan.append((rule, url, form_for_rule(app, rule, p, world)))
        before = snapshot()
        answered, wrote = {}, []
        for rule, url, form in plan:
            for method in METHODS:
                r = p.client.open(url, method=method, **open_kwargs(form))
                r.get_data()  # a streamed answer (CSV) runs to its end
                r.close()
                where = f"{kind}: {method} {url} ({rule.endpoint}, answered {r.status_code})"
                assert r.status_code < 500, where
                after = snapshot()
                changed = differences(before, after)
                if changed:  # every such request is listed, each against the state before it
                    wrote.append(f"{where} wrote: {changed}")
                    before = after
                answered[r.status_code] = answered.get(r.status_code, 0) + 1
        if p.client.get(p.home).status_code != 200:
            wrote.append(f"{kind} lost its session during the walk")
        assert not wrote, "\n".join(wrote)
    assert sum(answered.values()) == len(plan) * len(METHODS) and len(plan) > 100
    assert answered.get(200, 0) > 10, answered  # the principal really reached pages
