"""Bulk corrections by CSV (SPEC 14): the uploaded files and their rows (frozen copies of
accounts.models.BulkUpload and BulkRow)."""
# ruff: noqa: F403, F405
from peewee import *


def up(migrator, db):
    class User(Model):
        id = BigAutoField()

        class Meta:
            database = db
            table_name = 'user'

    class BulkUpload(Model):
        id = BigAutoField()
        owner_kind = CharField(max_length=8)
        owner_id = BigIntegerField()
        created_at = DateTimeField()
        file_name = CharField()
        encoding = CharField(max_length=16)
        columns = CharField()
        rows_total = IntegerField(default=0)
        rows_change = IntegerField(default=0)
        rows_unchanged = IntegerField(default=0)
        rows_error = IntegerField(default=0)
        state = CharField(max_length=12, default='previewed')
        apply_started_at = DateTimeField(null=True)
        applied_at = DateTimeField(null=True)
        rows_applied = IntegerField(default=0)
        rows_stale = IntegerField(default=0)
        rows_refused = IntegerField(default=0)

        class Meta:
            database = db
            table_name = 'bulk_upload'
            indexes = ((('owner_kind', 'owner_id', 'id'), False),)

    class BulkRow(Model):
        id = BigAutoField()
        upload = ForeignKeyField(BulkUpload, on_delete='CASCADE')
        line = IntegerField()
        login_id = TextField()
        portal = TextField(default='')
        new_email = TextField(null=True)
        new_login_id = TextField(null=True)
        name = TextField(null=True)
        phone = TextField(null=True)
        user = ForeignKeyField(User, null=True, on_delete='SET NULL')
        user_version = IntegerField(null=True)
        user_portal = CharField(max_length=8, null=True)
        current_email = TextField(null=True)
        current_login_id = TextField(null=True)
        current_name = TextField(null=True)
        current_phone = TextField(null=True)
        status = CharField(max_length=10)
        changes = CharField(max_length=64, default='')
        errors = TextField(null=True)
        result = CharField(max_length=10, null=True)
        result_detail = TextField(null=True)
        applied_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = 'bulk_row'
            indexes = ((('upload', 'line'), True), (('upload', 'status', 'line'), False))

    db.create_tables([BulkUpload, BulkRow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('bulk_row'))
    migrator.migrate(migrator.drop_table('bulk_upload'))
