"""Registry errors, each with a stable machine code for the API and the CLI."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class for everything the registry refuses.

    ``message`` is what a person reads; ``technical`` (optional) is the
    exception behind it, shown folded away, and ``reason`` names the upload
    failure in registry.upload_errors. The API adds both to its error body
    (``extra``).
    """

    code = "registry_error"

    def __init__(self, message: str, *, technical: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.technical = technical
        self.reason = reason

    @property
    def extra(self) -> dict[str, str]:
        pairs = (("reason", self.reason), ("technical", self.technical))
        return {key: value for key, value in pairs if value}

    def __str__(self) -> str:
        return f"{self.message}\n{self.technical}" if self.technical else self.message


class UnknownModel(RegistryError):
    """No model is registered under that slug."""

    code = "unknown_model"


class UnknownVersion(RegistryError):
    """The model has no version with that number."""

    code = "unknown_version"


class NoActiveVersion(RegistryError):
    """The model exists but serves no version yet."""

    code = "no_active_version"


class ModelExists(RegistryError):
    """A model is already registered under that slug."""

    code = "model_exists"


class InvalidSlug(RegistryError):
    """The slug cannot be used in a URL."""

    code = "invalid_slug"


class InvalidModel(RegistryError):
    """The file failed the preflight: not a usable model."""

    code = "invalid_model"


class MissingLibrary(InvalidModel):
    """The file needs a Python package that is not installed on this server."""

    code = "missing_library"


class UnsupportedFileType(RegistryError):
    """The file's name does not end in an extension the registry can load."""

    code = "unsupported_file_type"


class ModelTooLarge(RegistryError):
    """The file is over the configured size limit."""

    code = "model_too_large"


class InvalidMetadata(RegistryError):
    """The metadata given with an upload is not a JSON object of the right shape."""

    code = "invalid_metadata"


class MetadataTooLarge(InvalidMetadata):
    """A metadata field is over MODELHUB_MAX_METADATA_BYTES once encoded."""

    code = "metadata_too_large"


class InvalidReference(RegistryError):
    """A drift reference given at upload that cannot be read or does not fit
    the model."""

    code = "invalid_reference"


class InvalidSchema(RegistryError):
    """An edited input schema or metadata does not fit the version's model."""

    code = "invalid_schema"


class NothingToChange(RegistryError):
    """An edit that names nothing to change."""

    code = "nothing_to_change"


class PicklePermissionRequired(RegistryError):
    """joblib/pickle uploads need their own permission: loading them runs code."""

    code = "pickle_permission_required"


class VersionNotReady(RegistryError):
    """Only versions that passed the preflight can be served."""

    code = "version_not_ready"


class VersionActive(RegistryError):
    """The active version of a model cannot be deleted."""

    code = "version_active"


class ModelHasActiveVersion(VersionActive):
    """A model that serves a version is not deleted unless that is forced."""

    code = "model_has_active_version"


class NothingToRollBack(RegistryError):
    """The model has no earlier version to return to."""

    code = "nothing_to_roll_back"


class ModelUnavailable(RegistryError):
    """The version's file is missing, altered or no longer loads."""

    code = "model_unavailable"


class StoreUnavailable(ModelUnavailable):
    """The model store cannot be reached (or lost its bucket) and this host
    holds no copy of the version's file; versions it holds keep serving."""

    code = "store_unavailable"


class RegistryUnavailable(RegistryError):
    """The database cannot be reached and nothing was resolved before."""

    code = "registry_unavailable"


class UnknownAlias(RegistryError):
    """The model has no alias with that name."""

    code = "unknown_alias"


class InvalidAlias(RegistryError):
    """An alias name that is not slug-like, or reads as a version (``v3``,
    ``latest``)."""

    code = "invalid_alias"


class VersionInUse(VersionActive):
    """A version an alias or the traffic policy points to cannot be deleted."""

    code = "version_in_use"


class InvalidPolicy(RegistryError):
    """A traffic policy that cannot be served as given."""

    code = "invalid_policy"


class InvalidWeight(InvalidPolicy):
    """A candidate's weight outside [0, 1]."""

    code = "invalid_weight"


class CandidateNotReady(InvalidPolicy):
    """A candidate or shadow version that did not pass the preflight."""

    code = "candidate_not_ready"


class CandidateIsActive(InvalidPolicy):
    """A candidate or shadow equal to the active version compares nothing."""

    code = "same_as_active"


class InvalidSticky(InvalidPolicy):
    """A sticky header that is not a header name, or a feature the model lacks."""

    code = "invalid_sticky"


class InvalidGuard(InvalidPolicy):
    """A rollback guard with a threshold or window out of range."""

    code = "invalid_guard"


class NoCandidate(RegistryError):
    """Promote needs a policy with a candidate."""

    code = "no_candidate"
