"""The STORAGES entry of model files, for settings.py and for tests that
switch a process to an object store."""

from __future__ import annotations

from typing import Any


def model_storage(
    kind: str, *, bucket: str, prefix: str, endpoint_url: str | None
) -> dict[str, Any]:
    """Django's STORAGES["default"]: the local disk, or django-storages' S3
    backend for any S3-compatible store (credentials as boto3 finds them)."""
    if kind != "s3":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix,
            "endpoint_url": endpoint_url,
            # A version's name is never reused: never overwrite, never hand
            # out public URLs, never rewrite the stored bytes.
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "gzip": False,
            # Bounded connects and reads: a store that stops answering costs
            # a load a few seconds, not a worker its timeout.
            "client_config": Config(
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2, "mode": "standard"},
                # Stores other than AWS (MinIO, Ceph, moto) name buckets in the path.
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
            # Bodies above this spool to disk while read (large models).
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
