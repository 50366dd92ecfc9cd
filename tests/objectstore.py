"""A real S3 server on 127.0.0.1 for the tests: moto's standalone server
speaks the S3 HTTP protocol, so django-storages and boto3 talk to it exactly
as they would to AWS S3 or MinIO."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

# moto accepts any key unless told to check them (see start_s3_server).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelhub-test",
    "AWS_SECRET_ACCESS_KEY": "modelhub-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]
    buckets: list[str] = field(default_factory=list)

    def client(self, **credentials: str) -> Any:
        import boto3

        keys = {**CREDENTIALS, **credentials}
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            region_name=keys["AWS_DEFAULT_REGION"],
        )

    def new_bucket(self) -> str:
        name = f"modelhub-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def drop_bucket(self, bucket: str) -> None:
        """What an operator's mistake does: every object, then the bucket."""
        client = self.client()
        for key in self.keys(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_s3_server(log: Path, *, check_credentials: bool = False) -> S3Server:
    """moto_server on a free port; with ``check_credentials`` it refuses any
    key it did not issue (InvalidAccessKeyId), as a real store does."""
    port = free_port()
    env = dict(os.environ)
    if check_credentials:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    executable = Path(sys.executable).with_name("moto_server")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = S3Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server ended at start: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("moto_server did not answer within 30 s")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@dataclass
class ObjectStore:
    """The bucket a test's registry stores its files in."""

    server: S3Server
    bucket: str
    prefix: str

    def keys(self) -> list[str]:
        return self.server.keys(self.bucket)

    def key_of(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put(self, name: str, body: bytes) -> None:
        self.server.client().put_object(
            Bucket=self.bucket, Key=self.key_of(name), Body=body
        )

    def remove(self, name: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=self.key_of(name))

    def env(self) -> dict[str, str]:
        """The environment a ModelHub process needs to use this bucket."""
        return {
            **CREDENTIALS,
            "MODELHUB_STORAGE": "s3",
            "MODELHUB_S3_BUCKET": self.bucket,
            "MODELHUB_S3_PREFIX": self.prefix,
            "MODELHUB_S3_ENDPOINT_URL": self.server.endpoint,
        }


@pytest.fixture
def object_store(
    s3_server: S3Server, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> ObjectStore:
    """This process's model files in a fresh bucket of the test S3 server."""
    from modelhub.model_storage import model_storage

    store = ObjectStore(s3_server, s3_server.new_bucket(), "models-under-test")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    settings.MODELHUB_STORAGE = "s3"
    settings.MODELHUB_S3_BUCKET = store.bucket
    settings.MODELHUB_S3_PREFIX = store.prefix
    settings.MODELHUB_S3_ENDPOINT_URL = s3_server.endpoint
    settings.STORAGES = {
        **settings.STORAGES,
        "default": model_storage(
            "s3",
            bucket=store.bucket,
            prefix=store.prefix,
            endpoint_url=s3_server.endpoint,
        ),
    }
    return store
