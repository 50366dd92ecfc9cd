"""What is served: model routes, their immutable versions, activation history."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from . import batching


class MLModel(models.Model):
    """A route: the slug clients call and the version it currently serves."""

    slug = models.SlugField(
        max_length=100,
        unique=True,
        help_text="The URL name: predictions are served at /api/predict/SLUG/",
    )
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    active_version = models.ForeignKey(
        "ModelVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version served at the slug. Change it with the "
        "'Activate' and 'Roll back' actions so the switch is recorded.",
    )
    private = models.BooleanField(
        default=False,
        help_text="Answer only staff, the users and groups granted it and API "
        "keys scoped to it; to everyone else it does not exist (404).",
    )
    granted_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="granted_models",
        help_text="Non-staff users who may call this model while it is private.",
    )
    granted_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="granted_models",
        help_text="Groups whose members may call this model while it is private.",
    )
    batch_max_rows = models.PositiveIntegerField(
        "batch max rows",
        default=batching.OFF,
        validators=[batching.validate_rows],
        help_text="0: batching off. 2 to 1024: single- and few-row requests to "
        "the same version that arrive within the wait below are predicted in one "
        "call of up to this many rows, and each gets its own rows back; results "
        "are identical to unbatched ones. A batch holds at most one request per "
        "gunicorn worker and thread (MODELHUB_WORKERS x MODELHUB_THREADS).",
    )
    batch_max_wait_ms = models.FloatField(
        "batch max wait (ms)",
        default=batching.DEFAULT_WAIT_MS,
        validators=[batching.validate_wait_ms],
        help_text="How long the first request of a batch waits for others, in "
        "milliseconds (above 0, at most 100). Used only when batching is on.",
    )
    capture_payloads = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Keep each prediction request's body in the request log "
        "(capped at MODELHUB_LOG_PAYLOAD_BYTES), so its traffic can be replayed "
        "against another version (manage.py replay). Bodies may hold personal "
        "data: keep this off unless you need it.",
    )
    keep_predictions = models.BooleanField(
        default=True,
        db_default=True,
        help_text="Keep what each request was answered (the predicted labels or "
        "numbers, capped at MODELHUB_LOG_PREDICTIONS_BYTES) so ground-truth "
        "feedback (POST /api/feedback/<slug>/) can be joined to it for live "
        "accuracy or error. Off: no feedback is accepted for its requests.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.slug

    @property
    def display_name(self) -> str:
        return self.name or self.slug

    @property
    def batching_on(self) -> bool:
        return self.batch_max_rows != batching.OFF


class ModelVersion(models.Model):
    """An uploaded file and what the preflight learned about it. The file never
    changes; its input schema and metadata may be edited (registry.actions)."""

    class Format(models.TextChoices):
        JOBLIB = "joblib"
        PICKLE = "pickle"
        SKOPS = "skops"

    class Kind(models.TextChoices):
        CLASSIFIER = "classifier"
        REGRESSOR = "regressor"
        CLUSTERER = "clusterer"
        OUTLIER_DETECTOR = "outlier_detector", "outlier detector"
        OTHER = "other"

    class Status(models.TextChoices):
        READY = "ready"
        INVALID = "invalid"

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField(editable=False)
    file = models.FileField(max_length=255, editable=False)
    original_filename = models.CharField(max_length=255, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    size = models.BigIntegerField(editable=False)
    format = models.CharField(max_length=10, choices=Format.choices, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, editable=False)
    estimator = models.CharField(max_length=255, editable=False)
    input_schema = models.JSONField(
        default=dict,
        blank=True,
        help_text="Features the model expects, in order: "
        '{"features": [{"name": ..., "type": "number" | "string"}], ...}',
    )
    classes = models.JSONField(null=True, blank=True, editable=False)
    metadata = models.JSONField(
        default=dict,
        blank=True,
        help_text="Metrics, training info, input_example...: a JSON object.",
    )
    library_versions = models.JSONField(default=dict, blank=True, editable=False)
    warnings = models.JSONField(default=list, blank=True, editable=False)
    smoke_test = models.CharField(max_length=500, blank=True, editable=False)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.READY, editable=False
    )
    status_message = models.TextField(blank=True, editable=False)
    # Set by a web worker that could not load the stored file (cleared when
    # one loads it again): activation succeeded but serving did not.
    load_error = models.TextField(blank=True, editable=False)
    load_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Times its model ended or hung a worker while predicting (registry.inflight).
    crashes = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model__slug", "-number"]
        verbose_name = "model version"
        constraints = [
            models.UniqueConstraint(
                fields=["model", "number"], name="registry_version_number_unique"
            )
        ]
        permissions = [
            (
                "upload_pickle",
                "Can upload joblib/pickle files (loading them runs their code)",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} v{self.number}"


class Change(models.Model):
    """Who changed the registry, when, and through which channel."""

    class Channel(models.TextChoices):
        ADMIN = "admin"
        CLI = "cli"
        API = "api"
        AUTO = "auto"  # a rollout guard tripped (registry.rollouts)

    channel = models.CharField(max_length=10, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class Activation(Change):
    """One switch of a model's active version: who, when, from what, how."""

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="activations"
    )
    # Plain numbers, so deleting an old version keeps the history readable.
    from_number = models.PositiveIntegerField(null=True, blank=True)
    to_number = models.PositiveIntegerField()
    rollback = models.BooleanField(default=False)

    def __str__(self) -> str:
        origin = f"v{self.from_number}" if self.from_number else "none"
        return f"{self.model.slug}: {origin} -> v{self.to_number} ({self.channel})"


class VersionEdit(Change):
    """One edit of how a version serves (schema, metadata): who, when, what, how."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="edits")
    # A plain number, as in Activation: deleting the version keeps the history.
    number = models.PositiveIntegerField()
    # {"input_schema": {"from": [names], "to": [names]}, "metadata": [keys]}
    changes = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.model.slug} v{self.number}: {', '.join(self.changes)}"


class Alias(models.Model):
    """A named pointer to one version of a model (``champion``, ``staging``),
    served at ``/api/predict/<slug>@<name>/``; moved like an activation."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=50)
    # RESTRICT: deleting a version an alias points to is refused first
    # (registry.actions.delete_version says which aliases to move).
    version = models.ForeignKey(
        ModelVersion, on_delete=models.RESTRICT, related_name="aliases"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "name"], name="registry_alias_name_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.slug}@{self.name}"


class AliasMove(Change):
    """One move of an alias: set, moved or deleted (``to_number`` None)."""

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="alias_moves"
    )
    name = models.CharField(max_length=50)
    from_number = models.PositiveIntegerField(null=True, blank=True)
    to_number = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        origin = f"v{self.from_number}" if self.from_number else "none"
        target = f"v{self.to_number}" if self.to_number else "deleted"
        return f"{self.model.slug}@{self.name}: {origin} -> {target} ({self.channel})"


class TrafficPolicy(models.Model):
    """How the unpinned URL splits its traffic: the active version, plus at
    most one candidate taking ``weight`` of it, plus an optional shadow that
    predicts every request after the response, unseen (registry.rollouts)."""

    model = models.OneToOneField(
        MLModel, on_delete=models.CASCADE, primary_key=True, related_name="policy"
    )
    candidate = models.ForeignKey(
        ModelVersion,
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="+",
    )
    weight = models.FloatField(default=0.0)
    # At most one of the two: the request header, or the input feature, whose
    # value picks the version by a hash (one caller, one version).
    sticky_header = models.CharField(max_length=100, blank=True)
    sticky_feature = models.CharField(max_length=200, blank=True)
    shadow = models.ForeignKey(
        ModelVersion,
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Guards (registry.guards): the candidate goes to weight 0 when one trips.
    guard_error_rate = models.FloatField(null=True, blank=True)
    guard_p95_ms = models.FloatField(null=True, blank=True)
    guard_p95_ratio = models.FloatField(null=True, blank=True)
    guard_last_requests = models.PositiveIntegerField(null=True, blank=True)
    guard_minutes = models.FloatField(null=True, blank=True)
    guard_min_requests = models.PositiveIntegerField(default=20)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "traffic policy"
        verbose_name_plural = "traffic policies"

    def __str__(self) -> str:
        return f"{self.model_id} policy"


class PolicyChange(Change):
    """One change of a model's traffic policy: set, promoted, ended, or a
    guard that tripped (channel ``auto``, with its reason)."""

    class Action(models.TextChoices):
        SET = "set"
        PROMOTE = "promote"
        ABORT = "abort"
        END = "end"
        TRIP = "trip"

    model = models.ForeignKey(
        MLModel, on_delete=models.CASCADE, related_name="policy_changes"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    # The policy as the API shows it, before and after (None: no policy).
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.model.slug} policy {self.action} ({self.channel})"
