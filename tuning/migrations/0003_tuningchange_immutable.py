"""The audit log is append-only in the database too: UPDATE and DELETE on it are refused."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION tuning_change_is_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'tuning_tuningchange is append-only: audit entries are never updated or deleted';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tuning_change_immutable BEFORE UPDATE OR DELETE ON tuning_tuningchange
    FOR EACH ROW EXECUTE FUNCTION tuning_change_is_immutable();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS tuning_change_immutable ON tuning_tuningchange;
DROP FUNCTION IF EXISTS tuning_change_is_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("tuning", "0002_tuning_tiers_rules_examples_audit")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
