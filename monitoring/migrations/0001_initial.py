"""The request log's models move here from the api app; their tables stay.

State only: the tables were created by api's migrations (0001 to 0003) and
keep their names (Meta.db_table), so no row is copied and nothing is locked.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("api", "0003_requestlog_without_time_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="LogGap",
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
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("dropped", models.PositiveIntegerField()),
                        ("since", models.DateTimeField()),
                    ],
                    options={
                        "db_table": "api_loggap",
                    },
                ),
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
                    options={
                        "db_table": "api_rollupmark",
                    },
                ),
                migrations.CreateModel(
                    name="RequestLog",
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
                        ("created_at", models.DateTimeField()),
                        ("slug", models.CharField(max_length=100)),
                        (
                            "version",
                            models.PositiveIntegerField(blank=True, null=True),
                        ),
                        ("status", models.PositiveSmallIntegerField()),
                        ("error_code", models.CharField(blank=True, max_length=50)),
                        ("rows", models.PositiveIntegerField(default=0)),
                        ("latency_ms", models.FloatField()),
                        ("model_ms", models.FloatField(blank=True, null=True)),
                        ("request_id", models.CharField(max_length=128)),
                        ("client", models.CharField(blank=True, max_length=64)),
                        ("payload", models.TextField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "api_requestlog",
                        "indexes": [
                            models.Index(
                                fields=["slug", "version", "created_at"],
                                name="requestlog_slug_time",
                            ),
                            models.Index(
                                condition=models.Q(("status__gte", 400)),
                                fields=["created_at"],
                                name="requestlog_errors_time",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="RequestStat",
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
                        (
                            "resolution",
                            models.CharField(
                                choices=[("m", "Minute"), ("h", "Hour"), ("d", "Day")],
                                max_length=1,
                            ),
                        ),
                        ("start", models.DateTimeField()),
                        ("slug", models.CharField(max_length=100)),
                        ("version", models.PositiveIntegerField()),
                        ("error", models.BooleanField()),
                        ("bucket", models.PositiveSmallIntegerField()),
                        ("count", models.PositiveIntegerField()),
                        ("rows", models.BigIntegerField()),
                        ("latency_sum_ms", models.FloatField()),
                    ],
                    options={
                        "db_table": "api_requeststat",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=(
                                    "resolution",
                                    "start",
                                    "slug",
                                    "version",
                                    "error",
                                    "bucket",
                                ),
                                name="requeststat_key",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
