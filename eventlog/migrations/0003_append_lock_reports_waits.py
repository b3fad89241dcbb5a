from django.db import migrations

from eventlog import guards


def install(apps, schema_editor):
    guards.install(schema_editor.connection)


class Migration(migrations.Migration):
    """The append lock now tells its holder whether it had to wait (see `guards`)."""

    dependencies = [("eventlog", "0002_guards")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
