"""The request log's models now belong to the monitoring app.

State only: monitoring.0001_initial takes over the same tables, which stay
as they are. Reversing it gives them back to api, again without touching
the database.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0003_requestlog_without_time_index"),
        ("monitoring", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="LogGap"),
                migrations.DeleteModel(name="RequestLog"),
                migrations.DeleteModel(name="RequestStat"),
                migrations.DeleteModel(name="RollupMark"),
            ],
            database_operations=[],
        ),
    ]
