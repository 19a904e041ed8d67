"""Services (SPEC 12): a service's ``status`` is free text shown to users as the operator's file
gives it (``flask import-services``), replacing the three-valued ``state`` code.

Existing rows keep what users saw: the Japanese label their state was shown with (any other code
is kept as it was). ``down`` maps those three labels back to their codes; any other text becomes
``subscribed`` (the code cannot hold it). Plain ALTER TABLE on both databases (SQLite >= 3.35
drops a column in place; no trigger or index covers these columns). Frozen DDL: nothing here
imports live code.
"""
# ruff: noqa: F403, F405
from peewee import *

LABELS = (('subscribed', 'お申し込み済み'), ('in_progress', '手続き中'), ('cancelled', '解約済み'))


def up(migrator, db):
    db.execute_sql('ALTER TABLE "service" ADD COLUMN "status" VARCHAR(100) NOT NULL DEFAULT \'\'')
    for code, label in LABELS:
        db.execute_sql(f'UPDATE "service" SET "status" = {db.param} WHERE "state" = {db.param}',
                       (label, code))
    db.execute_sql('UPDATE "service" SET "status" = "state" WHERE "status" = \'\'')
    migrator.migrate(migrator.drop_column('service', 'state'))


def down(migrator, db):
    db.execute_sql('ALTER TABLE "service" ADD COLUMN "state" VARCHAR(32) NOT NULL '
                   'DEFAULT \'subscribed\'')
    for code, label in LABELS:
        db.execute_sql(f'UPDATE "service" SET "state" = {db.param} WHERE "status" = {db.param}',
                       (code, label))
    migrator.migrate(migrator.drop_column('service', 'status'))
