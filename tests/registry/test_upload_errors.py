"""A refused upload says what was wrong and what to do, in one sentence.

The same file gets the same sentence and the same code from the admin,
``manage.py loadmodel`` and the management API, with the exception behind it
kept apart (a <details> element, a second line, a ``technical`` field); and
whichever way it came, nothing of it is left behind. Every file goes through
the real preflight child.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from registry import actions
from registry.exceptions import UnsupportedFileType
from registry.models import MLModel, ModelVersion
from registry.upload_errors import FAILURES, check_file_name
from tests.conftest import AllocatesOnLoad, SleepsOnLoad

pytestmark = pytest.mark.django_db

SLUG = "target"


@dataclass(frozen=True)
class Refusal:
    """What one channel told the uploader."""

    code: str
    sentence: str
    technical: str


def iris_bytes(iris_classifier: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(iris_classifier, buffer)
    return buffer.getvalue()


def untrusted_skops_bytes(tmp_path: Path) -> bytes:
    import operator

    import skops.io as sio
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = np.abs(np.random.default_rng(0).normal(size=(20, 2)))
    pipe = make_pipeline(FunctionTransformer(operator.neg), LinearRegression())
    path = tmp_path / "untrusted.skops"
    sio.dump(pipe.fit(x, x[:, 0]), path)
    return path.read_bytes()


@dataclass(frozen=True)
class BadFile:
    name: str
    content: Callable[[Any, Path], bytes]
    reason: str
    settings: tuple[tuple[str, Any], ...] = ()
    details: tuple[tuple[str, Any], ...] = ()


BAD_FILES = {
    "wrong-extension": BadFile(
        "notes.txt", lambda model, tmp: b"accuracy: 0.97\n", "unsupported_file_type"
    ),
    "empty": BadFile("model.joblib", lambda model, tmp: b"", "empty_file"),
    "text": BadFile(
        "model.joblib",
        lambda model, tmp: b"sepal length,sepal width\n5.1,3.5\n",
        "text_file",
    ),
    "json": BadFile(
        "model.pkl",
        lambda model, tmp: json.dumps({"123": [0.1, 0.2]}).encode(),
        "json_file",
    ),
    "random-bytes": BadFile(
        "model.joblib",
        lambda model, tmp: np.random.default_rng(7).bytes(4096),
        "not_a_pickle",
    ),
    "truncated-pickle": BadFile(
        "model.joblib",
        lambda model, tmp: iris_bytes(model)[: len(iris_bytes(model)) // 2],
        "truncated",
    ),
    "not-an-estimator": BadFile(
        "weights.joblib",
        lambda model, tmp: pickle.dumps({"weights": [1, 2, 3]}),
        "no_predict",
        details=(("held", "dict"),),
    ),
    "over-the-size-limit": BadFile(
        "model.joblib",
        lambda model, tmp: iris_bytes(model),
        "too_large",
        settings=(("MODELHUB_MAX_MODEL_BYTES", 1000),),
        details=(("limit", "1000 bytes"),),
    ),
    "load-times-out": BadFile(
        "slow.pkl",
        lambda model, tmp: pickle.dumps(SleepsOnLoad()),
        "timeout",
        settings=(("MODELHUB_PREFLIGHT_TIMEOUT", 2),),
        details=(("timeout", 2),),
    ),
    "load-over-the-memory-limit": BadFile(
        "hog.pkl",
        lambda model, tmp: pickle.dumps(AllocatesOnLoad()),
        "memory_limit",
        settings=(("MODELHUB_PREFLIGHT_MEMORY_MB", 512),),
        details=(("memory_mb", 512),),
    ),
    "skops-with-untrusted-types": BadFile(
        "model.skops",
        lambda model, tmp: untrusted_skops_bytes(tmp),
        "untrusted_types",
        details=(("types", "_operator.neg"),),
    ),
}
EXCEPTION_NAMES = re.compile(r"\b\w+(Error|Exception)\b")


def files(path: Path, reference: Path | None, stack: ExitStack) -> dict[str, Any]:
    """The multipart file fields of an upload, open for the request."""
    found = {"file": stack.enter_context(path.open("rb"))}
    if reference is not None:
        found["reference"] = stack.enter_context(reference.open("rb"))
    return found


def through_admin(client: Client, path: Path, reference: Path | None = None) -> Refusal:
    model = MLModel.objects.get(slug=SLUG)
    with ExitStack() as stack:
        response = client.post(
            reverse("admin:registry_modelversion_add"),
            {"model": model.pk, "activate": "on", **files(path, reference, stack)},
        )
    assert response.status_code == 200
    page = response.content.decode()
    errors = re.findall(r'<ul class="errorlist"[^>]*><li>(.*?)</li>', page)
    assert len(errors) == 1, errors
    folded = re.search(r"<details[^>]*><summary>[^<]*</summary><pre>(.*?)</pre>", page)
    technical = unescape(folded.group(1)) if folded else ""
    code = re.match(r"\[(\w+)(: \w+)?\]", technical)
    return Refusal(code and code.group(1), unescape(errors[0]), technical)


def through_loadmodel(path: Path, reference: Path | None = None) -> Refusal:
    """The CLI names the file refused: the model's, or the reference's."""
    given = ["--reference", str(reference)] if reference is not None else []
    with pytest.raises(CommandError) as refused:
        call_command("loadmodel", str(path), "--slug", SLUG, *given)
    first, *rest = str(refused.value).split("\n")
    about = f"{reference if reference is not None else path}: "
    assert first.startswith(about)
    assert len(rest) <= 1
    technical = rest[0] if rest else ""
    code = re.match(r"\[(\w+)(: \w+)?\]", technical)
    return Refusal(code and code.group(1), first.removeprefix(about), technical)


def through_api(
    api: Client, token: dict[str, str], path: Path, reference: Path | None = None
) -> Refusal:
    with ExitStack() as stack:
        response = api.post(
            f"/api/models/{SLUG}/versions/", files(path, reference, stack), **token
        )
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    expected_status = 413 if body["code"] == "model_too_large" else 400
    assert response.status_code == expected_status
    return Refusal(body["code"], body["detail"], body.get("technical", ""))


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_upload_gets_the_same_sentence_and_code_in_admin_cli_and_api(
    case, settings, tmp_path, iris_classifier, staff_client, api, token, stored_files
):
    for name, value in case.settings:
        setattr(settings, name, value)
    path = tmp_path / case.name
    path.write_bytes(case.content(iris_classifier, tmp_path))
    actions.create_model(slug=SLUG)
    failure = FAILURES[case.reason]
    expected = failure.sentence.format(**dict(case.details))

    answers = {
        "admin": through_admin(staff_client, path),
        "loadmodel": through_loadmodel(path),
        "api": through_api(api, token, path),
    }

    for channel, answer in answers.items():
        assert answer.sentence == expected, channel
        assert answer.code == failure.code, channel
        assert not EXCEPTION_NAMES.search(answer.sentence), channel
    assert not ModelVersion.objects.exists()
    assert list(MLModel.objects.values_list("slug", flat=True)) == [SLUG]
    assert stored_files() == []


def test_api_refusal_names_the_reason_and_keeps_the_exception_apart(
    api, token, tmp_path
):
    actions.create_model(slug=SLUG)
    path = tmp_path / "model.joblib"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    with path.open("rb") as handle:
        response = api.post(f"/api/models/{SLUG}/versions/", {"file": handle}, **token)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_model"
    assert body["reason"] == "not_a_pickle"
    assert body["detail"] == FAILURES["not_a_pickle"].sentence
    assert re.fullmatch(r"\w*(Error|Exception): .*", body["technical"])


def test_admin_folds_the_exception_under_the_sentence(staff_client, tmp_path):
    actions.create_model(slug=SLUG)
    path = tmp_path / "model.pkl"
    path.write_bytes(json.dumps({"123": 1}).encode())
    refusal = through_admin(staff_client, path)
    assert refusal.sentence == FAILURES["json_file"].sentence
    assert refusal.technical.startswith("[invalid_model: json_file] ")
    assert "Error" in refusal.technical


@pytest.mark.parametrize(
    "name",
    [
        "model.skops",
        "model.joblib",
        "model.pkl",
        "model.pickle",
        "mlflow-model.zip",
        "MODEL.JOBLIB",
        "model.joblib.gz",
        "model.pkl.xz",
        "C:\\Users\\ds\\model.skops",
    ],
)
def test_file_names_with_a_model_extension_are_accepted(name):
    check_file_name(name)


@pytest.mark.parametrize(
    "name",
    ["model.txt", "model.json", "model.h5", "model.onnx", "model", "model.gz", ".."],
)
def test_file_names_without_a_model_extension_are_refused_with_the_list(name):
    with pytest.raises(UnsupportedFileType) as refused:
        check_file_name(name)
    assert refused.value.code == "unsupported_file_type"
    assert refused.value.message == FAILURES["unsupported_file_type"].sentence
    for extension in (".skops", ".joblib", ".pkl", ".pickle", ".zip"):
        assert extension in refused.value.technical


def test_wrong_extension_is_refused_before_the_file_is_read(tmp_path):
    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the file was read")

    with pytest.raises(UnsupportedFileType):
        actions.register_version(slug=SLUG, source=Unreadable(), filename="m.csv")


def test_every_failure_is_one_sentence_that_says_what_to_do():
    for reason, failure in FAILURES.items():
        sentence = failure.sentence
        assert sentence.endswith(".") and sentence.count(". ") == 0, reason
        assert ": " in sentence, reason  # what was wrong: what to do
        assert failure.code, reason


def test_readme_lists_every_refusal_code_and_reason():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### When an upload is refused", 1)[1].split("\n### ")[0]
    for reason, failure in FAILURES.items():
        assert f"| `{failure.code}` | `{reason}` |" in section, reason
