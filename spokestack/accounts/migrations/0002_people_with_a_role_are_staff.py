"""Every person with a role may open the instance admin (`roles.STAFF_ROLES` holds every role), so
every one is staff. People added before the admin's user form went through `services.user_create`
could hold a role without "Staff status" and could not sign in; this gives it to them. Not audited:
it changes no one's rights, only makes the flag agree with the role they already hold."""

from django.db import migrations

ROLES = ["instance_admin", "instance_manager", "account_manager", "client_contact"]


def staff_for_every_role(apps, schema_editor):
    User = apps.get_model("auth", "User")
    User.objects.filter(is_staff=False, groups__name__in=ROLES).update(is_staff=True)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(staff_for_every_role, migrations.RunPython.noop)]
