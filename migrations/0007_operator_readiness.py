"""Operator readiness (SPEC 12): settings recorded in the database (whether the demo data was
loaded), acceptance counters on terms versions, and an index for finding contracts by name
(name, id: the keyset order of the console's contract search).

Frozen DDL: nothing here imports live code.
"""
# ruff: noqa: F403, F405
from peewee import *


def up(migrator, db):
    class SiteSetting(Model):
        key = CharField(max_length=64, primary_key=True)
        value = TextField(default='')
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'site_setting'
    db.create_tables([SiteSetting])

    migrator.migrate(
        migrator.add_column('terms_version', 'accepted_count', IntegerField(default=0)),
        migrator.add_column('terms_version', 'published_by', CharField(max_length=255, default='')),
        migrator.add_index('contract', ('name', 'id'), False),
    )
    # Counters start from what was already agreed (kept up to date by accept() from now on).
    db.execute_sql(
        'UPDATE terms_version SET accepted_count = (SELECT count(*) FROM terms_acceptance a '
        'WHERE a.terms_id = terms_version.id)')


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('contract', 'contract_name_id'),
        migrator.drop_column('terms_version', 'published_by'),
        migrator.drop_column('terms_version', 'accepted_count'),
    )
    db.execute_sql('DROP TABLE IF EXISTS site_setting')
