"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
from playhouse.schema_diff import diff_models

from accounts import search_index
from accounts.db import database, is_postgres
from accounts.models import ALL_MODELS
from accounts.schema import pending, runner


def test_migrations_create_exactly_what_the_models_declare(db):
    diff = diff_models(database.obj, ALL_MODELS)
    # The trigram indexes belong to the search index (accounts.search_index), not to a model.
    diff = diff._replace(drop_indexes=[i for i in diff.drop_indexes
                                       if i.name not in search_index.OWN_INDEXES])
    assert not diff, f"models and migrations differ:\n{diff}"


def test_no_migration_is_left_pending(db):
    assert pending() == []
    applied = {m.name for m in runner().status() if m.applied}
    assert {"0001_initial", "0002_search_index", "0003_prefix_cover_indexes",
            "0005_bulk_corrections", "0010_prefix_bucket_indexes"} <= applied


def test_substring_search_index_exists(db):
    if is_postgres():
        rows = database.execute_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'user' AND right(indexname, 4) = 'trgm'"
        ).fetchall()
        assert len(rows) == 4
    else:
        rows = database.execute_sql(
            "SELECT name FROM sqlite_master WHERE name = 'user_search' OR name LIKE 'user_search_a%'"
        ).fetchall()
        assert {r[0] for r in rows} >= {"user_search", "user_search_ai", "user_search_au", "user_search_ad"}


def test_db_upgrade_restores_indexes_an_interrupted_import_left_dropped(runner, db):
    from accounts.models import User

    names = [m.name for m in database.get_indexes("user") if m.name not in search_index.OWN_INDEXES
             and not m.name.endswith("_pkey") and "login_id_key" in m.columns]
    assert names
    database.execute_sql(f'DROP INDEX "{names[0]}"')
    result = runner.invoke(args=["db-upgrade"])
    assert result.exit_code == 0, result.output
    assert "restored after an interrupted import: index user(portal, login_id_key)" in result.output
    assert any(tuple(m.columns) == ("portal", "login_id_key") for m in database.get_indexes("user"))
    assert User.select().count() == 0
