"""Initial schema: every table of the product (frozen copies of accounts.models).

Python-side defaults (utcnow) live in the models; the database needs none.
"""
# ruff: noqa: F403, F405
from peewee import *


def up(migrator, db):
    class Contract(Model):
        ecid = CharField(unique=True, max_length=14)
        parent = ForeignKeyField('self', null=True, on_delete='RESTRICT')
        name = CharField()
        created_at = DateTimeField()
        users_total = IntegerField(default=0)
        users_first_login_done = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'contract'
    db.create_tables([Contract])

    class User(Model):
        id = BigAutoField()
        portal = CharField(max_length=8)
        contract = ForeignKeyField(Contract, on_delete='RESTRICT')
        login_id = CharField()
        login_id_key = CharField()
        email = CharField()
        email_key = CharField()
        name = CharField(default='')
        phone = CharField(max_length=64, default='')
        is_admin = BooleanField(default=False)
        origin = CharField(max_length=8, default='native')
        legacy_login_id = CharField(null=True)
        legacy_phone = CharField(null=True, max_length=64)
        migrated_at = DateTimeField(null=True)
        password_hash = CharField(null=True)
        password_changed_at = DateTimeField(null=True)
        first_login_done_at = DateTimeField(null=True)
        failed_logins = IntegerField(default=0)
        locked_until = DateTimeField(null=True)
        disabled = BooleanField(default=False)
        last_login_at = DateTimeField(null=True)
        twostep_method = CharField(null=True, max_length=8)
        totp_secret = CharField(null=True, max_length=64)
        totp_last_step = IntegerField(null=True)
        twostep_last_used_at = DateTimeField(null=True)
        language = CharField(null=True, max_length=5)
        version = IntegerField(default=1)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'user'
            indexes = ((('portal', 'login_id_key'), True), (('email_key',), False), (('name',), False), (('phone',), False), (('contract', 'first_login_done_at'), False))
    db.create_tables([User])

    class AuditEntry(Model):
        id = BigAutoField()
        at = DateTimeField()
        actor_kind = CharField(max_length=8)
        actor_id = IntegerField(null=True)
        actor_label = CharField(default='')
        action = CharField(max_length=64)
        target_user = ForeignKeyField(User, null=True, on_delete='SET NULL')
        target_contract = ForeignKeyField(Contract, null=True, on_delete='SET NULL')
        field = CharField(null=True, max_length=64)
        old_value = TextField(null=True)
        new_value = TextField(null=True)
        ip = CharField(null=True, max_length=64)
        detail = TextField(null=True)
        class Meta:
            database = db
            table_name = 'audit_entry'
            indexes = ((('target_user', 'at'), False), (('target_contract', 'at'), False), (('action', 'at'), False), (('at',), False))
    db.create_tables([AuditEntry])

    class BackupCode(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, on_delete='CASCADE')
        code_hash = CharField(max_length=128)
        created_at = DateTimeField()
        used_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'backup_code'
    db.create_tables([BackupCode])

    class LegacyAccount(Model):
        id = BigAutoField()
        login_id = CharField()
        login_id_key = CharField()
        contract_ecid = CharField(max_length=14)
        parent_ecid = CharField(null=True, max_length=14)
        contract_name = CharField(default='')
        email = CharField()
        name = CharField(default='')
        phone = CharField(max_length=64, default='')
        is_admin = BooleanField(default=False)
        password_hash = TextField(null=True)
        user = ForeignKeyField(User, null=True, on_delete='SET NULL')
        source_line = IntegerField(null=True)
        migrated_at = DateTimeField()
        confirmed_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'legacy_account'
            indexes = ((('login_id_key', 'contract_ecid'), True), (('user',), False))
    db.create_tables([LegacyAccount])

    class Mail(Model):
        id = BigAutoField()
        message_id = CharField(unique=True)
        kind = CharField(max_length=32)
        user = ForeignKeyField(User, null=True, on_delete='SET NULL')
        recipient = CharField()
        subject = CharField()
        body_text = TextField()
        body_html = TextField(null=True)
        status = CharField(max_length=8, default='queued')
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField()
        lease_until = DateTimeField(null=True)
        last_error = TextField(null=True)
        created_at = DateTimeField()
        sent_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'mail'
            indexes = ((('status', 'next_attempt_at'), False), (('user', 'created_at'), False))
    db.create_tables([Mail])

    class MailAttempt(Model):
        id = BigAutoField()
        mail = ForeignKeyField(Mail, on_delete='CASCADE')
        at = DateTimeField()
        ok = BooleanField()
        smtp_code = IntegerField(null=True)
        smtp_answer = TextField(default='')
        class Meta:
            database = db
            table_name = 'mail_attempt'
    db.create_tables([MailAttempt])

    class MigrationPeriod(Model):
        id = IntegerField(primary_key=True)
        start_at = DateTimeField()
        end_at = DateTimeField()
        updated_at = DateTimeField()
        updated_by = CharField(default='')
        class Meta:
            database = db
            table_name = 'migration_period'
    db.create_tables([MigrationPeriod])

    class OneTimeCode(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, on_delete='CASCADE')
        code_hash = CharField(max_length=128)
        created_at = DateTimeField()
        sent_at = DateTimeField()
        expires_at = DateTimeField()
        attempts = IntegerField(default=0)
        used_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'one_time_code'
            indexes = ((('user', 'created_at'), False),)
    db.create_tables([OneTimeCode])

    class ResetToken(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, on_delete='CASCADE')
        purpose = CharField(max_length=16, default='reset')
        token_hash = CharField(unique=True, max_length=64)
        new_email = CharField(null=True)
        created_at = DateTimeField()
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)
        voided_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'reset_token'
            indexes = ((('user', 'purpose', 'created_at'), False),)
    db.create_tables([ResetToken])

    class Service(Model):
        contract = ForeignKeyField(Contract, on_delete='CASCADE')
        name = CharField()
        state = CharField(max_length=32, default='subscribed')
        class Meta:
            database = db
            table_name = 'service'
            indexes = ((('contract', 'name'), True),)
    db.create_tables([Service])

    class Staff(Model):
        login_id = CharField()
        login_id_key = CharField(unique=True)
        role = CharField(max_length=16)
        password_hash = CharField()
        totp_secret = CharField(null=True, max_length=64)
        totp_confirmed_at = DateTimeField(null=True)
        totp_last_step = IntegerField(null=True)
        failed_logins = IntegerField(default=0)
        locked_until = DateTimeField(null=True)
        disabled = BooleanField(default=False)
        language = CharField(null=True, max_length=5)
        created_at = DateTimeField()
        last_login_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'staff'
    db.create_tables([Staff])

    class TermsVersion(Model):
        version = IntegerField(unique=True)
        title = CharField()
        body = TextField()
        published_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'terms_version'
    db.create_tables([TermsVersion])

    class TermsAcceptance(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, on_delete='CASCADE')
        terms = ForeignKeyField(TermsVersion, on_delete='RESTRICT')
        accepted_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'terms_acceptance'
            indexes = ((('user', 'terms'), True),)
    db.create_tables([TermsAcceptance])

    class Ticket(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, null=True, on_delete='CASCADE')
        legacy_account = ForeignKeyField(LegacyAccount, null=True, on_delete='CASCADE')
        filed_from = CharField(max_length=8)
        subject = CharField()
        body = TextField()
        status = CharField(max_length=16, default='open')
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'ticket'
            indexes = ((('user', 'created_at'), False),)
    db.create_tables([Ticket])

    class TrustedBrowser(Model):
        id = BigAutoField()
        user = ForeignKeyField(User, on_delete='CASCADE')
        token_hash = CharField(unique=True, max_length=64)
        label = CharField(default='')
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        expires_at = DateTimeField()
        revoked_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'trusted_browser'
    db.create_tables([TrustedBrowser])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('trusted_browser'))
    migrator.migrate(migrator.drop_table('ticket'))
    migrator.migrate(migrator.drop_table('terms_acceptance'))
    migrator.migrate(migrator.drop_table('terms_version'))
    migrator.migrate(migrator.drop_table('staff'))
    migrator.migrate(migrator.drop_table('service'))
    migrator.migrate(migrator.drop_table('reset_token'))
    migrator.migrate(migrator.drop_table('one_time_code'))
    migrator.migrate(migrator.drop_table('migration_period'))
    migrator.migrate(migrator.drop_table('mail_attempt'))
    migrator.migrate(migrator.drop_table('mail'))
    migrator.migrate(migrator.drop_table('legacy_account'))
    migrator.migrate(migrator.drop_table('backup_code'))
    migrator.migrate(migrator.drop_table('audit_entry'))
    migrator.migrate(migrator.drop_table('user'))
    migrator.migrate(migrator.drop_table('contract'))

