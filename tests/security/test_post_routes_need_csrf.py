"""Every state change needs the CSRF token, and POST is the only method that changes state.

Walked over the URL map, as every kind of principal (so as one who could otherwise use each
route, and anonymously): a POST without the token, or with the token of another session, answers
400 with the "form expired" page and changes nothing; PUT, PATCH and DELETE answer 405 everywhere
and change nothing. By reading the source: no view compares ``request.method`` with "GET" (HEAD
would then take the POST branch), and every route that takes both GET and POST branches on
``request.method == "POST"`` (or ``!=``) itself or in a helper it calls.
"""
import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from app import ROOT
from tests.security.principals import (
    KINDS,
    build_principal,
    build_world,
    differences,
    form_for_rule,
    open_kwargs,
    rules,
    snapshot,
    travel,
    url_of,
)

pytestmark = pytest.mark.usefixtures("db")

CSRF_TITLES = ("フォームの有効期限が切れました", "Your form expired")  # blueprints.errorpages.CSRF_PAGE
OTHER_METHODS = ("PUT", "PATCH", "DELETE")
# Routes that take GET and POST without branching on the method, and why that is safe.
SAME_FOR_EVERY_METHOD = {
    "legacy.other": "answers 404 to every method (after the period the blueprint redirects first)",
}


@pytest.fixture
def app(make_app):
    return make_app(RATELIMIT_ENABLED=False)


@pytest.mark.parametrize("kind", KINDS)
def test_no_post_without_the_token_and_no_other_method_changes_anything(app, kind):
    with travel() as clock:
        world = build_world(app, clock)
        p = build_principal(app, world, kind)
        foreign = csrf_token_of_another_session(app)
        plan = [(rule, url_of(rule, p, world), form_for_rule(app, rule, p, world)) for rule in rules(app)]
        before = snapshot()
        problems, posts = [], 0
        for rule, url, form in plan:
            if "POST" in rule.methods:
                without = {k: v for k, v in form.items() if k != "csrf_token"}
                for label, data in (("no token", without), ("another session's token",
                                                            {**without, "csrf_token": foreign})):
                    r = p.client.post(url, **open_kwargs(data, query=False))
                    body = r.get_data(as_text=True)
                    if r.status_code != 400 or not any(t in body for t in CSRF_TITLES):
                        problems.append(f"{kind}: POST {url} ({rule.endpoint}) with {label} answered "
                                        f"{r.status_code}, not the CSRF error page")
                    posts += 1
            for method in OTHER_METHODS:
                r = p.client.open(url, method=method, **open_kwargs(form, query=False))
                r.close()
                if r.status_code != 405:
                    problems.append(f"{kind}: {method} {url} ({rule.endpoint}) answered {r.status_code}")
            after = snapshot()
            changed = differences(before, after)
            if changed:
                problems.append(f"{kind}: {rule.endpoint} ({url}) changed: {changed}")
                before = after
        if p.client.get(p.home).status_code != 200:
            problems.append(f"{kind} lost its session")
    assert not problems, "\n".join(problems)
    assert posts > 100


def csrf_token_of_another_session(app) -> str:
    from tests.helpers import csrf_token

    return csrf_token(app.test_client().get("/business/signin").get_data(as_text=True))


# --- By reading the source ------------------------------------------------------------------------

def _sources():
    return sorted((ROOT / "blueprints").rglob("*.py")) + [ROOT / "app.py"]


def _is_request_method(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "method" and isinstance(node.value, ast.Name)
            and node.value.id == "request")


def _mentions(node, words) -> bool:
    return any(isinstance(n, ast.Constant) and n.value in words for n in ast.walk(node))


def forbidden_comparisons(tree) -> list:
    """Comparisons of ``request.method`` with "GET" or "HEAD" (==, !=, in, either side)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_request_method(s) for s in sides) and any(
                    _mentions(s, ("GET", "HEAD")) for s in sides if not _is_request_method(s)):
                found.append(node)
    return found


def test_no_view_compares_the_method_with_get():
    """``if request.method == "GET": ... else:`` lets a HEAD take the else (SPEC 11.2)."""
    found = []
    for path in _sources():
        for node in forbidden_comparisons(ast.parse(path.read_text(encoding="utf-8"))):
            found.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "compare request.method with \"POST\" instead:\n" + "\n".join(found)


@pytest.mark.parametrize("source, forbidden", [
    ('if request.method == "GET":\n    pass\nelse:\n    save()', True),
    ('if request.method != "GET":\n    save()', True),
    ('if request.method in ("GET", "HEAD"):\n    pass', True),
    ('if "GET" == request.method:\n    pass', True),
    ('if request.method == "POST":\n    save()', False),
    ('if request.method != "POST":\n    return page()', False),
])
def test_the_source_check_finds_what_it_forbids(source, forbidden):
    assert bool(forbidden_comparisons(ast.parse(source))) == forbidden


def _branches_on_post(source: str) -> bool:
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if isinstance(node, ast.Compare) and _mentions(node, ("POST",)) and any(
                _is_request_method(s) for s in (node.left, *node.comparators)):
            return True
    return False


def _view_and_helpers(view) -> list[str]:
    """The view's own source and that of the module-level functions it calls by name."""
    func = inspect.unwrap(view)
    source = textwrap.dedent(inspect.getsource(func))
    sources = [source]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else None)
            helper = func.__globals__.get(name) if name else None
            qualified = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            if helper is None and qualified:  # flow.advance(...): a function of another view module
                owner = func.__globals__.get(node.func.value.id)
                helper = getattr(owner, node.func.attr, None) if inspect.ismodule(owner) else None
            if inspect.isfunction(helper) and helper.__module__.startswith(("blueprints", "app")):
                sources.append(inspect.getsource(helper))
    return sources


def test_routes_taking_get_and_post_branch_on_post_explicitly(app):
    missing = []
    for rule in rules(app):
        if not {"GET", "POST"} <= rule.methods or rule.endpoint in SAME_FOR_EVERY_METHOD:
            continue
        sources = _view_and_helpers(app.view_functions[rule.endpoint])
        if not any(_branches_on_post(s) for s in sources):
            missing.append(f"{rule.endpoint} ({rule.rule})")
    assert not missing, ("these routes take GET and POST but never test request.method == \"POST\": split "
                         "them, or branch explicitly:\n" + "\n".join(missing))
