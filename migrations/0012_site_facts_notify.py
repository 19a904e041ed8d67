"""PostgreSQL tells the web workers when the site's facts change (accounts.site.facts).

Every page shows the migration period and the demo flag. A worker keeps them between requests
and reads them again only after the database has said they changed: each statement on
``migration_period`` or ``site_setting`` (insert, update, delete, truncate; from the app, a
command or an operator's own SQL) sends a notification on the channel ``portal_site_facts``,
which the workers' connections listen to. SQLite reads them in the process at every request (no
round trip to save): nothing to do there.

Frozen DDL: nothing here imports live code.
"""
from peewee import PostgresqlDatabase

TABLES = ("migration_period", "site_setting")
POSTGRES_UP = (
    "CREATE OR REPLACE FUNCTION portal_site_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN PERFORM pg_notify('portal_site_facts', TG_TABLE_NAME); RETURN NULL; END $$",
    *(f'CREATE TRIGGER "{table}_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{table}" '
      "FOR EACH STATEMENT EXECUTE FUNCTION portal_site_facts_changed()" for table in TABLES),
)
DOWN = (
    *(f'DROP TRIGGER IF EXISTS "{table}_notify" ON "{table}"' for table in TABLES),
    "DROP FUNCTION IF EXISTS portal_site_facts_changed()",
)


def _postgres(db) -> bool:
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    if _postgres(db):
        for sql in POSTGRES_UP:
            db.execute_sql(sql)


def down(migrator, db):
    if _postgres(db):
        for sql in DOWN:
            db.execute_sql(sql)
