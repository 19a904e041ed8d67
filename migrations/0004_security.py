"""Security hardening (SPEC 11): server-side sessions, identity requests answered by the worker,
second-step failure counters, the legacy sign-in's lockout (frozen DDL, no live imports)."""
# ruff: noqa: F403, F405
from peewee import *


def up(migrator, db):
    class WebSession(Model):
        id = BigAutoField()
        key_hash = CharField(max_length=64, unique=True)
        principal = CharField(max_length=24, null=True)
        signed_in = BooleanField(default=False)
        data = TextField(default='')
        created_at = DateTimeField()
        last_seen_at = DateTimeField()
        ip = CharField(max_length=64, default='')
        user_agent = CharField(default='')
        class Meta:
            database = db
            table_name = 'web_session'
            indexes = ((('principal',), False), (('last_seen_at',), False))

    class IdentityRequest(Model):
        id = BigAutoField()
        kind = CharField(max_length=16)
        portal = CharField(max_length=8)
        login_id = CharField()
        email = CharField(default='')
        name = CharField(default='')
        phone = CharField(max_length=64, default='')
        message = TextField(default='')
        ip = CharField(max_length=64, default='')
        created_at = DateTimeField()
        processed_at = DateTimeField(null=True)
        outcome = CharField(max_length=32, null=True)
        class Meta:
            database = db
            table_name = 'identity_request'
            indexes = ((('processed_at', 'id'), False),)

    db.create_tables([WebSession, IdentityRequest])
    # Plain ALTER TABLE ... ADD COLUMN on both databases: peewee's SQLite migrator rebuilds the
    # table for a NOT NULL column, which would drop the user table's search-index triggers.
    timestamp = 'TIMESTAMP' if isinstance(db, PostgresqlDatabase) else 'DATETIME'
    for table, column, ddl in (
            ('user', 'twostep_failures', 'INTEGER NOT NULL DEFAULT 0'),
            ('user', 'twostep_locked_until', timestamp),
            ('staff', 'twostep_failures', 'INTEGER NOT NULL DEFAULT 0'),
            ('staff', 'twostep_locked_until', timestamp),
            ('legacy_account', 'failed_logins', 'INTEGER NOT NULL DEFAULT 0'),
            ('legacy_account', 'locked_until', timestamp)):
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {ddl}')


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('legacy_account', 'locked_until'),
        migrator.drop_column('legacy_account', 'failed_logins'),
        migrator.drop_column('staff', 'twostep_locked_until'),
        migrator.drop_column('staff', 'twostep_failures'),
        migrator.drop_column('user', 'twostep_locked_until'),
        migrator.drop_column('user', 'twostep_failures'),
        migrator.drop_table('identity_request'),
        migrator.drop_table('web_session'),
    )
