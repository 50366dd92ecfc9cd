"""The request log and its per-minute rollup for the dashboard.

The tables keep the names they had in the api app (api_requestlog, ...): the
move to monitoring changed only Django's state, never the database.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class RequestLog(models.Model):
    """One row per request to a prediction endpoint, success or failure.

    Slug and version are plain columns: deleting a version or a model never
    deletes its rows, and unknown slugs are logged too. No index on time
    alone: each one is another page written per request, and prunelogs
    walks the rows by id instead.
    """

    created_at = models.DateTimeField()
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField(null=True, blank=True)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=50, blank=True)
    rows = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField()
    model_ms = models.FloatField(null=True, blank=True)
    request_id = models.CharField(max_length=128)
    client = models.CharField(max_length=64, blank=True)
    payload = models.TextField(null=True, blank=True)
    key_name = models.CharField(
        max_length=50, blank=True, help_text="The API key that called (its name)."
    )
    batch_size = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Requests predicted in the one call this request rode in; "
        "empty when it was not batched (batching off, or it failed before "
        "predicting).",
    )
    route = models.CharField(
        max_length=10,
        default="active",
        db_default="active",
        help_text="Why this version answered: active, candidate, pinned, alias, "
        "or shadow (the shadow's own row, same request id).",
    )
    # A shadow row's comparison with what the client was served: rows whose
    # label differs (classifiers and other labels) or the sum of absolute
    # differences (regressors), and the served values' sum and sum of squares
    # (regressors: the spread the differences are read against).
    shadow_diff = models.FloatField(null=True, blank=True)
    served_sum = models.FloatField(null=True, blank=True)
    served_sq_sum = models.FloatField(null=True, blank=True)
    # What was predicted, kept so ground-truth feedback can be joined
    # (monitoring.kept): a JSON array of the first rows' values, within
    # MODELHUB_LOG_PREDICTIONS_BYTES; the ids the request named its rows by;
    # and the rows past the cap, which no feedback can reach.
    predictions = models.TextField(null=True, blank=True)
    row_ids = models.TextField(null=True, blank=True)
    unjoinable = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "api_requestlog"
        indexes = [
            # Feedback names its request by id; so does the admin's search.
            models.Index(fields=["request_id"], name="requestlog_request_id"),
            models.Index(
                fields=["slug", "version", "created_at"], name="requestlog_slug_time"
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(status__gte=400),
                name="requestlog_errors_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.slug} {self.status}"


class RequestStat(models.Model):
    """Requests per period, model, version, error flag and latency bucket.

    Kept at three resolutions (minute, hour, day), folded from the log rows
    past ``RollupMark`` (monitoring.rollup), so a window of any length is read
    from a few thousand rows: whole days, then whole hours, then minutes at the
    edge. ``version`` 0 = none resolved.
    """

    class Resolution(models.TextChoices):
        MINUTE = "m"
        HOUR = "h"
        DAY = "d"

    resolution = models.CharField(max_length=1, choices=Resolution.choices)
    start = models.DateTimeField()
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    error = models.BooleanField()
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField()
    rows = models.BigIntegerField()
    latency_sum_ms = models.FloatField()
    # Requests that rode in a batch, and the sum of their batch sizes: their
    # mean batch size is one division, whatever the window.
    batched = models.PositiveIntegerField(default=0, db_default=0)
    batch_size_sum = models.BigIntegerField(default=0, db_default=0)
    # Why the version answered (RequestLog.route): candidate and active side
    # by side, shadows apart from what clients were served.
    route = models.CharField(max_length=10, default="active", db_default="active")
    # Shadow rows' comparisons (RequestLog.shadow_diff...), summed.
    shadow_diff = models.FloatField(default=0.0, db_default=0.0)
    served_sum = models.FloatField(default=0.0, db_default=0.0)
    served_sq_sum = models.FloatField(default=0.0, db_default=0.0)
    # Rows predicted but past the kept predictions' cap (RequestLog.unjoinable).
    unjoinable = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "api_requeststat"
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "resolution",
                    "start",
                    "slug",
                    "version",
                    "route",
                    "error",
                    "bucket",
                ],
                name="requeststat_route_key",
            )
        ]


class RollupMark(models.Model):
    """The last request-log id folded into RequestStat (one row, pk 1)."""

    last_id = models.BigIntegerField(default=0)

    class Meta:
        db_table = "api_rollupmark"


class LogGap(models.Model):
    """Log rows that overflowed a worker's buffer during a database outage."""

    created_at = models.DateTimeField(auto_now_add=True)
    dropped = models.PositiveIntegerField()
    since = models.DateTimeField()

    class Meta:
        db_table = "api_loggap"


class ReplayReport(models.Model):
    """What a version would have answered to captured traffic, against what
    was served (manage.py replay, or the admin's action on a version)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField(help_text="The version replayed.")
    since = models.DateTimeField(help_text="Traffic logged from this time on.")
    limit = models.PositiveIntegerField(help_text="Most recent requests replayed.")
    requests = models.PositiveIntegerField(default=0)
    rows_compared = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(
        default=0, help_text="Bodies cut at MODELHUB_LOG_PAYLOAD_BYTES."
    )
    errors = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(
        null=True, blank=True, help_text="Share of rows whose label was the served one."
    )
    mae = models.FloatField(
        null=True, blank=True, help_text="Regressors: mean absolute difference."
    )
    served_std = models.FloatField(null=True, blank=True)
    # {"worst": [{"request_id", "served_version", "rows", "differing" | "mae"}],
    #  "errors": [{"request_id", "code", "detail"}]}
    details = models.JSONField(default=dict)
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version} replay {self.created_at:%Y-%m-%d %H:%M}"


class Feedback(models.Model):
    """The true label of one predicted row, joined to what a version predicted
    for it: one row per log row (the client's, and a shadow's) and row index.

    What was predicted, by which version and route and when, is copied from
    the log row when the label arrives, so quality over a window reads this
    table alone (on its (slug, version, predicted_at) index) and outlives the
    log's pruning. Sending a label again replaces it.
    """

    log_id = models.BigIntegerField(help_text="The RequestLog row it joins.")
    row = models.PositiveIntegerField(help_text="The row's index in its request.")
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    route = models.CharField(max_length=10)
    request_id = models.CharField(max_length=128)
    predicted_at = models.DateTimeField(help_text="When the request was served.")
    received_at = models.DateTimeField(help_text="When the label last arrived.")
    # Labels compared as str(label), as probabilities are keyed; a regressor's
    # true value and its error as numbers.
    label = models.TextField()
    predicted = models.TextField()
    error = models.FloatField(
        null=True, blank=True, help_text="Regressors: predicted minus true."
    )

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["log_id", "row"], name="feedback_row")
        ]
        indexes = [
            models.Index(
                fields=["slug", "version", "predicted_at"], name="feedback_window"
            ),
            models.Index(fields=["request_id"], name="feedback_request_id"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version} {self.request_id}[{self.row}]"

    @property
    def correct(self) -> bool | None:
        return None if self.error is not None else self.label == self.predicted


class DriftReference(models.Model):
    """A version's drift reference: the bins fitted to a sample of its
    training data given at upload, or to its first predicted rows (the
    baseline), with each bin's share (monitoring.drift.Reference)."""

    class Source(models.TextChoices):
        UPLOAD = "upload"
        BASELINE = "baseline"

    version = models.OneToOneField(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="drift"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    rows = models.PositiveIntegerField(help_text="Rows the bins were fitted to.")
    bins = models.JSONField(help_text="monitoring.drift.Reference.as_dict()")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.version} drift reference ({self.source})"


class DriftSample(models.Model):
    """Predicted rows of a version with no reference yet, kept until there
    are MODELHUB_DRIFT_BASELINE_ROWS of them to fit its baseline; then
    deleted. One row per worker's batch of rows."""

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="+"
    )
    rows = models.PositiveIntegerField()
    # {"columns": {name: [values]}, "predictions": [values] | null}
    values = models.JSONField()
    # When they were kept: the rows past the baseline's are counted at it.
    created_at = models.DateTimeField(auto_now_add=True)


class DriftCount(models.Model):
    """Live rows per hour or day, version, feature and bin (the rollup's
    resolutions but the minute's). ``feature`` "" is the predictions."""

    resolution = models.CharField(max_length=1, choices=RequestStat.Resolution.choices)
    start = models.DateTimeField()
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    feature = models.CharField(max_length=200)
    bin = models.PositiveSmallIntegerField()
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "start", "slug", "version", "feature", "bin"],
                name="driftcount_key",
            )
        ]


class FeedbackStat(models.Model):
    """Labelled rows per period (the rollup's three resolutions, by when they
    were predicted), version, route and (label, predicted) pair, kept with
    every write of Feedback: quality over a week reads a few thousand rows,
    not every label. A regressor's rows have a blank pair and their errors'
    sums."""

    resolution = models.CharField(max_length=1, choices=RequestStat.Resolution.choices)
    start = models.DateTimeField()
    slug = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    route = models.CharField(max_length=10)
    label = models.TextField()
    predicted = models.TextField()
    count = models.BigIntegerField()
    regressed = models.BigIntegerField(default=0)
    abs_error = models.FloatField(default=0.0)
    sq_error = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "resolution",
                    "start",
                    "slug",
                    "version",
                    "route",
                    "label",
                    "predicted",
                ],
                name="feedbackstat_key",
            )
        ]
