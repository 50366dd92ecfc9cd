"""The control plane's request and response shapes, for the OpenAPI schema
(views render plain dicts)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    active = serializers.BooleanField()
    status = serializers.CharField()
    kind = serializers.CharField()
    format = serializers.CharField()
    estimator = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    created_at = serializers.DateTimeField()


CAPTURE_HELP = (
    "Keep each prediction request's body in the request log (capped at "
    "MODELHUB_LOG_PAYLOAD_BYTES), so `manage.py replay` can predict the "
    "traffic again with another version."
)
KEEP_HELP = (
    "Keep what each request was answered (capped at "
    "MODELHUB_LOG_PREDICTIONS_BYTES), so ground-truth labels sent to POST "
    "/api/feedback/<slug>/ are joined to it for live quality; on by default."
)
BATCH_ROWS_HELP = (
    "Adaptive batching: 0 = off; 2 to 1024 = single- and few-row requests to "
    "the same version that arrive within batch_max_wait_ms are predicted in one "
    "call of up to this many rows, with results identical to unbatched ones. "
    "A batch holds at most MODELHUB_WORKERS x MODELHUB_THREADS requests. "
    "Out of range: 400 invalid_batching."
)
BATCH_WAIT_HELP = (
    "How long a batch waits for more requests, in milliseconds: above 0, at "
    "most 100 (default 2). Out of range: 400 invalid_batching."
)


class ModelSummarySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    private = serializers.BooleanField()
    active_version = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField(allow_null=True)
    estimator = serializers.CharField(allow_null=True)


class ModelDetailSerializer(ModelSummarySerializer):
    versions = VersionSerializer(many=True)
    input_schema = serializers.JSONField(allow_null=True)
    classes = serializers.JSONField(allow_null=True)
    metadata = serializers.JSONField(allow_null=True)
    example_request = serializers.JSONField(allow_null=True)
    batch_max_rows = serializers.IntegerField(help_text=BATCH_ROWS_HELP)
    batch_max_wait_ms = serializers.FloatField(help_text=BATCH_WAIT_HELP)
    capture_payloads = serializers.BooleanField(help_text=CAPTURE_HELP)
    keep_predictions = serializers.BooleanField(help_text=KEEP_HELP)
    aliases = serializers.ListField(
        child=serializers.DictField(),
        help_text='[{"name": "champion", "version": 2}]: POST '
        "/api/predict/{slug}@{name}/ serves that version.",
    )
    policy = serializers.JSONField(
        allow_null=True,
        help_text="The traffic policy (GET /api/models/{slug}/policy/), or null.",
    )


class ModelHealthSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    kind = serializers.CharField()


class CountersSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="responses with status >= 400")
    error_rate = serializers.FloatField()
    rows = serializers.IntegerField()
    mean_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    mean_batch_size = serializers.FloatField(
        allow_null=True,
        help_text="Mean size of the batches its batched requests rode in; null "
        "when none was batched.",
    )


QUALITY_HELP = (
    "Ground-truth feedback joined to the rows predicted in the window: "
    '{"labelled": n, "coverage": labelled / predicted rows, "accuracy": x, '
    '"f1_macro": x} (labels compared as text) or, for regressors, {"labelled", '
    '"coverage", "mae", "rmse"}; "unjoinable": rows past the kept predictions\' '
    "cap (MODELHUB_LOG_PREDICTIONS_BYTES)."
)


class RouteStatsSerializer(CountersSerializer):
    quality = serializers.JSONField(help_text=QUALITY_HELP)
    comparison = serializers.JSONField(
        required=False,
        help_text='shadow only: {"rows": n, "agreement": share of labels equal '
        'to the served ones} or, for regressors, {"rows": n, "mae": mean '
        'absolute difference, "served_std": the served values\' spread, '
        '"mae_to_std": their ratio}.',
    )


class VersionStatsSerializer(CountersSerializer):
    version = serializers.IntegerField(allow_null=True)
    last_request_at = serializers.DateTimeField(allow_null=True)
    quality = serializers.JSONField(
        help_text=QUALITY_HELP + " Over what clients were served (not the shadow)."
    )
    drift = serializers.JSONField(
        allow_null=True,
        help_text='{"reference": "baseline", "reference_rows": n, "rows": live '
        'rows binned in the window, "features": {"<name>": {"psi": x, "status": '
        '"ok" | "warn" | "alert" | "no_data"}} worst first, "predictions": '
        '{"psi", "status"}}; while the baseline is collected, {"reference": '
        '"baseline", "collecting": {"rows": n, "of": N}, ...}; null without.',
    )
    routes = serializers.DictField(
        child=RouteStatsSerializer(),
        help_text="The same counters per route: active, candidate (a traffic "
        "policy's canary), pinned (/v<N>/ or ?version=), alias, and shadow "
        "(predicted after the response, never returned; not in the version's "
        "own counts).",
    )


class ModelStatsSerializer(CountersSerializer):
    slug = serializers.CharField()
    last_request_at = serializers.DateTimeField(allow_null=True)
    versions = VersionStatsSerializer(many=True)


class TotalsSerializer(CountersSerializer):
    dropped_log_rows = serializers.IntegerField()
    refusals = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Requests refused before a model answered, per error code "
        "(not_authenticated, authentication_failed, forbidden, unknown_model, "
        "throttled). Requests for unknown models are counted under the model "
        "'(unknown)', not per slug.",
    )


class StatsSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    totals = TotalsSerializer()
    models = ModelStatsSerializer(many=True)


# The management API (api.control.publishing): request bodies and the version resource.


class ModelCreateSerializer(serializers.Serializer):
    slug = serializers.RegexField(
        r"^[-a-zA-Z0-9_]+$", max_length=100, help_text="The URL name"
    )
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False)
    private = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Predictions need a token; anonymous listings hide the model.",
    )
    batch_max_rows = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=1024,
        help_text=BATCH_ROWS_HELP,
    )
    batch_max_wait_ms = serializers.FloatField(
        required=False, default=2.0, max_value=100, help_text=BATCH_WAIT_HELP
    )


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file sent in the request (the schema shows FileFields as URLs)."""


class VersionUploadSerializer(serializers.Serializer):
    file = UploadField(help_text=".skops (safe), .joblib, .pkl/.pickle")
    metadata = serializers.CharField(
        required=False,
        help_text='A JSON object as a string: metrics, "input_schema", '
        '"input_example"...',
    )
    activate = serializers.BooleanField(
        required=False, default=True, help_text="Serve the new version at once."
    )
    reference = UploadField(
        required=False,
        help_text="Drift reference: a CSV sample of the training data with a "
        "header row (at most 10,000 rows kept), checked against the model and "
        "predicted in the preflight; 400 invalid_reference if it does not fit. "
        "Without one, the first predicted rows become the reference.",
    )


class ActivateSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=999_999_999)


class FeatureSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(["number", "string"], required=False)


class VersionEditSerializer(serializers.Serializer):
    input_schema = FeatureSerializer(
        many=True,
        required=False,
        help_text="The features, in order; checked against the model as the "
        "preflight checks an upload's schema.",
    )
    metadata = serializers.DictField(
        required=False, help_text="Replaces the version's metadata."
    )


class VersionDetailSerializer(VersionSerializer):
    model = serializers.CharField(help_text="The slug")
    input_schema = serializers.JSONField()
    classes = serializers.JSONField(allow_null=True)
    metadata = serializers.JSONField()
    warnings = serializers.ListField(child=serializers.CharField())


class ModelEditSerializer(serializers.Serializer):
    """A partial change: fields left out keep their value."""

    slug = serializers.RegexField(
        r"^[-a-zA-Z0-9_]+$",
        max_length=100,
        required=False,
        help_text="A new URL name: predictions move to /api/predict/<slug>/ at once.",
    )
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    private = serializers.BooleanField(required=False)
    batch_max_rows = serializers.IntegerField(
        required=False, min_value=0, max_value=1024, help_text=BATCH_ROWS_HELP
    )
    batch_max_wait_ms = serializers.FloatField(
        required=False, max_value=100, help_text=BATCH_WAIT_HELP
    )
    capture_payloads = serializers.BooleanField(required=False, help_text=CAPTURE_HELP)
    keep_predictions = serializers.BooleanField(required=False, help_text=KEEP_HELP)


class HistoryEntrySerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        ["activation", "rollback", "edit", "alias", "policy"],
        help_text="activation or rollback: the served version changed; edit: a "
        "version's schema or metadata did; alias: an alias was set, moved or "
        "deleted (to_version null); policy: the traffic policy changed.",
    )
    at = serializers.DateTimeField()
    user = serializers.CharField(
        allow_null=True, help_text="Who; null for a local command (the CLI)."
    )
    channel = serializers.ChoiceField(
        ["admin", "cli", "api", "auto"],
        help_text="auto: a rollout guard rolled the candidate back by itself.",
    )
    from_version = serializers.IntegerField(
        required=False, allow_null=True, help_text="activation, rollback, alias"
    )
    to_version = serializers.IntegerField(
        required=False, allow_null=True, help_text="activation, rollback, alias"
    )
    alias = serializers.CharField(required=False, help_text="alias")
    action = serializers.ChoiceField(
        ["set", "promote", "end", "trip"], required=False, help_text="policy"
    )
    before = serializers.JSONField(required=False, allow_null=True, help_text="policy")
    after = serializers.JSONField(required=False, allow_null=True, help_text="policy")
    reason = serializers.CharField(
        required=False, allow_null=True, help_text="policy: why a guard tripped"
    )
    version = serializers.IntegerField(required=False, help_text="edit")
    changes = serializers.JSONField(
        required=False,
        help_text='edit: {"input_schema": {"from": [...], "to": [...]}, '
        '"metadata": [keys]}',
    )


class AliasSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=999_999_999)


class AliasSerializer(serializers.Serializer):
    model = serializers.CharField()
    alias = serializers.CharField()
    version = serializers.IntegerField()


class GuardsSerializer(serializers.Serializer):
    error_rate = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1,
        help_text="Roll back when the candidate's share of failed requests in "
        "the window is above this.",
    )
    p95_ms = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Roll back when the candidate's p95 latency (ms) is above this.",
    )
    p95_ratio = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Roll back when the candidate's p95 is above this many times "
        "the active version's over the same window.",
    )
    last_requests = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The window: the candidate's last K requests (100 when no "
        "window is given).",
    )
    minutes = serializers.FloatField(
        required=False, allow_null=True, help_text="The window: the last M minutes."
    )
    min_requests = serializers.IntegerField(
        required=False,
        help_text="Requests the window must hold before a guard may trip (20).",
    )


class PolicySerializer(serializers.Serializer):
    candidate = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The version taking `weight` of the unpinned traffic.",
    )
    weight = serializers.FloatField(
        required=False, min_value=0, max_value=1, help_text="From 0 to 1."
    )
    sticky = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="A request header (e.g. X-Route-Key) whose value picks the "
        "version by a hash: one caller, one version.",
    )
    sticky_feature = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Or an input feature whose value (first row) picks it.",
    )
    shadow = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A version that also predicts every unpinned request after "
        "the response, logged with route=shadow, never returned.",
    )
    guards = GuardsSerializer(required=False, allow_null=True)


class PolicyDetailSerializer(serializers.Serializer):
    model = serializers.CharField()
    active_version = serializers.IntegerField(allow_null=True)
    policy = PolicySerializer(allow_null=True)
