from django.db import migrations, models
from django.db.models import Max


def mark_existing_rows_folded(apps, schema_editor):
    """Rows logged before this migration were rolled up as they were written."""
    RequestLog = apps.get_model("api", "RequestLog")
    RollupMark = apps.get_model("api", "RollupMark")
    db = schema_editor.connection.alias
    last = RequestLog.objects.using(db).aggregate(last=Max("id"))["last"] or 0
    RollupMark.objects.using(db).create(pk=1, last_id=last)


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_request_log"),
    ]

    operations = [
        migrations.CreateModel(
            name="RollupMark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("last_id", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(mark_existing_rows_folded, migrations.RunPython.noop),
    ]
