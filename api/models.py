"""API keys: how machines call ModelHub, each scoped to what it may do."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from .rates import validate_rate


class ApiKey(AbstractAPIKey):
    """A named key for one consumer, stored as a hash (shown once, at creation).

    The library keeps the prefix, hash, expiry and revoked flag; ModelHub adds
    the owner, the scopes and the last-used time.
    """

    class Predict(models.TextChoices):
        PUBLIC = "public", "public models only"
        LISTED = "listed", "the listed models only"
        ALL = "all", "every model, private ones too"

    class Management(models.TextChoices):
        NONE = "none", "no management API"
        READ = "read", "read"
        WRITE = "write", "read and write (the owner's permissions)"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The user the key acts for on the management API: it can "
        "do no more than its owner could in the admin.",
    )
    predict = models.CharField(
        "may predict on",
        max_length=10,
        choices=Predict.choices,
        default=Predict.PUBLIC,
    )
    allowed_models = models.ManyToManyField(
        "registry.MLModel",
        verbose_name="models",
        blank=True,
        related_name="api_keys",
        help_text="The models a key scoped to 'the listed models only' may call.",
    )
    management = models.CharField(
        "management API",
        max_length=10,
        choices=Management.choices,
        default=Management.NONE,
    )
    throttle_rate = models.CharField(
        max_length=30,
        blank=True,
        validators=[validate_rate],
        help_text="Requests allowed to this key, e.g. '100/minute'; empty "
        "means MODELHUB_THROTTLE_RATE.",
    )
    last_used_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Updated at most once a minute per worker.",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
