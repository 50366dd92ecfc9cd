"""Admin forms: the upload form, a model's settings and schema editing."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from . import actions, batching, jsondepth
from .exceptions import NothingToChange, RegistryError
from .inspection import SchemaError, normalize_features
from .models import MLModel, ModelVersion
from .upload_errors import ARCHIVE_EXTENSIONS, COMPRESSED_EXTENSIONS, MODEL_EXTENSIONS

# A hint for the browser's file picker; the server checks the name itself.
_ACCEPT = ",".join((*MODEL_EXTENSIONS, *ARCHIVE_EXTENSIONS, *COMPRESSED_EXTENSIONS))


class BoundedJSONField(forms.JSONField):
    """Django's JSONField, refusing nesting past MODELHUB_MAX_JSON_DEPTH as a
    field error before the standard library's parser recurses into it."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not self.disabled:
            _check_depth(value)
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        """The refused text is shown again as typed, not parsed to re-render."""
        if isinstance(data, str) and not self.disabled:
            try:
                jsondepth.check_text(data)
            except jsondepth.TooDeep:
                return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)


def _check_depth(text: str) -> None:
    try:
        jsondepth.check_text(text)
    except jsondepth.TooDeep as exc:
        raise forms.ValidationError(str(exc), code=exc.code) from None


class VersionUploadForm(forms.Form):
    model = forms.ModelChoiceField(queryset=MLModel.objects.all(), to_field_name="pk")
    file = forms.FileField(
        # An empty file is refused by the registry, in the words of every channel.
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": _ACCEPT}),
        help_text=".skops (safe), .joblib or .pkl/.pickle (runs code when loaded), "
        "or a .zip of an MLflow model directory with the sklearn flavor: its "
        "signature becomes the input schema, its input example the smoke row.",
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text='Optional JSON object: metrics, training info, "input_schema" '
        '(list of {"name", "type"}) or "input_example" (a record).',
    )
    reference = forms.FileField(
        label="Drift reference (CSV)",
        required=False,
        # An empty file is refused by the registry, as the model file is.
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv"}),
        help_text="Optional: a sample of the training data, a header row of "
        "feature names then one row per sample (10,000 rows kept at most). The "
        "model predicts it in the preflight, and drift is measured against it "
        "from the first request; without one, the first predicted rows become "
        "the reference.",
    )
    activate = forms.BooleanField(
        required=False, initial=True, help_text="Serve this version at once."
    )

    def clean_metadata(self) -> dict[str, Any]:
        raw = self.cleaned_data["metadata"].strip()
        if not raw:
            return {}
        _check_depth(raw)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Metadata must be a JSON object.")
        return value


class MLModelForm(forms.ModelForm):
    """The model page's form. The batching settings may be left out or empty
    (a script posting the other fields, a cleared box): they keep their value."""

    class Meta:
        model = MLModel
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in batching.FIELDS:
            if name in self.fields:
                self.fields[name].required = False

    def clean_batch_max_rows(self) -> int:
        return self._kept("batch_max_rows")

    def clean_batch_max_wait_ms(self) -> float:
        return self._kept("batch_max_wait_ms")

    def _kept(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        return getattr(self.instance, name) if value is None else value


class ModelVersionForm(forms.ModelForm):
    """Edits how a version serves; the preflight's checks run in clean(), so
    a schema or metadata that does not fit the model is a form error."""

    class Meta:
        model = ModelVersion
        fields = ["input_schema", "metadata"]
        field_classes = {"input_schema": BoundedJSONField, "metadata": BoundedJSONField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked_edit: actions.CheckedEdit | None = None

    def clean_input_schema(self) -> dict[str, Any]:
        schema = self.cleaned_data["input_schema"]
        if not isinstance(schema, dict):
            raise forms.ValidationError('The schema must be {"features": [...]}.')
        try:
            features = normalize_features(schema)
        except SchemaError as exc:
            raise forms.ValidationError(str(exc)) from None
        return {**schema, "features": features}

    def clean_metadata(self) -> dict[str, Any]:
        metadata = self.cleaned_data["metadata"]
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise forms.ValidationError("Metadata must be a JSON object.")
        return metadata

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        version = ModelVersion.objects.get(pk=self.instance.pk)
        schema = cleaned.get("input_schema")
        # A form posted without the field (a script) leaves metadata as it is.
        metadata = cleaned.get("metadata") if "metadata" in self.data else None
        try:
            self.checked_edit = actions.check_version_edit(
                version,
                input_schema=schema if schema != version.input_schema else None,
                metadata=None if metadata == version.metadata else metadata,
            )
        except NothingToChange:
            self.checked_edit = actions.CheckedEdit(version, None, None)
        except RegistryError as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned
