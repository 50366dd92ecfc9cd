"""Whatever name a file arrives with, it is stored under a name the server makes.

Names come from the uploader (the admin's multipart filename, the CLI's path,
the API's form field): traversal, absolute paths, NUL and very long names
must never choose where a file lands, nor break the database row.
"""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import pytest
from django.urls import reverse

from registry import actions
from registry.exceptions import UnsupportedFileType
from registry.models import MLModel, ModelVersion

pytestmark = pytest.mark.django_db

HOSTILE_NAMES = {
    "traversal": "../../../../tmp/escaped.joblib",
    "encoded-traversal": "..%2f..%2fescaped.joblib",
    "windows-traversal": "..\\..\\escaped.joblib",
    "absolute": "/etc/cron.d/escaped.joblib",
    "nul": "model\x00.joblib",
    "very-long": "m" * 5000 + ".joblib",
    "newline": "a\nb.joblib",
}
# Names without a model file's extension are refused before a byte is read.
NAMES_WITHOUT_EXTENSION = {"only-dots": "..", "empty": ""}


@pytest.fixture
def model_bytes(iris_classifier) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(iris_classifier, buffer)
    return buffer.getvalue()


def files_outside(root: Path, media_root: Path) -> set[Path]:
    return {
        p
        for p in root.rglob("*")
        if p.is_file() and media_root not in p.parents and p != media_root
    }


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_register_stores_any_name_under_a_generated_one(
    name, model_bytes, media_root, fast_preflight, tmp_path
):
    before = files_outside(tmp_path, media_root)
    version = actions.register_version(
        slug="iris", source=io.BytesIO(model_bytes), filename=name
    )

    version.refresh_from_db()
    assert version.file.name.startswith("models/iris/v1-")
    stored = (media_root / version.file.name).resolve()
    assert media_root.resolve() in stored.parents
    assert stored.read_bytes() == model_bytes
    assert files_outside(tmp_path, media_root) == before
    assert not Path("/tmp/escaped.joblib").exists()
    assert "\x00" not in version.original_filename
    assert "/" not in version.original_filename
    assert len(version.original_filename) <= 255


@pytest.mark.parametrize(
    "name", NAMES_WITHOUT_EXTENSION.values(), ids=NAMES_WITHOUT_EXTENSION.keys()
)
def test_register_refuses_a_name_without_a_model_extension(
    name, model_bytes, stored_files
):
    with pytest.raises(UnsupportedFileType):
        actions.register_version(
            slug="iris", source=io.BytesIO(model_bytes), filename=name
        )
    assert not ModelVersion.objects.exists()
    assert stored_files() == []


def multipart(fields: dict[str, str], filename: str, content: bytes) -> bytes:
    """A multipart body whose file part carries ``filename`` verbatim."""
    parts = [
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    header = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        f'name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return (
        b"".join(parts)
        + header.encode("utf-8", "surrogateescape")
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


BOUNDARY = "modelhub-test-boundary"


ANY_NAME = {**HOSTILE_NAMES, **NAMES_WITHOUT_EXTENSION}


@pytest.mark.parametrize("name", ANY_NAME.values(), ids=ANY_NAME.keys())
def test_admin_upload_stores_any_name_under_a_generated_one(
    name, model_bytes, media_root, fast_preflight, staff_client, tmp_path
):
    model = MLModel.objects.create(slug="iris")
    before = files_outside(tmp_path, media_root)
    staff_client.raise_request_exception = False
    response = staff_client.post(
        reverse("admin:registry_modelversion_add"),
        data=multipart({"model": str(model.pk), "activate": "on"}, name, model_bytes),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )

    # 400: Django refuses a part header over 1 KiB; 200: the form shows why.
    assert response.status_code in (200, 302, 400), response.content[:300]
    assert files_outside(tmp_path, media_root) == before
    version = ModelVersion.objects.filter(model=model).first()
    if version is None:
        assert response.status_code in (200, 400)
        assert not any(p.is_file() for p in media_root.rglob("*"))
        return
    assert response.status_code == 302
    assert version.file.name.startswith("models/iris/v1-")
    assert media_root.resolve() in (media_root / version.file.name).resolve().parents
    assert "\x00" not in version.original_filename
