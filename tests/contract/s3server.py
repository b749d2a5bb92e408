"""An S3 endpoint for tests: moto's server mode on 127.0.0.1, spoken to over real HTTP with real
SigV4 signatures, like any S3-compatible server a user runs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tests.server import free_port

REGION = "eu-north-1"
# Dummy credentials: moto accepts any, but botocore signs with them all the same.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "relay-test-key",
    "AWS_SECRET_ACCESS_KEY": "relay-test-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    # A developer's own ~/.aws must not leak into the tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


class MotoS3:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def client(self, **config: Any) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    def delete_bucket(self, name: str) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)

    def list(self, bucket: str) -> dict[str, dict[str, Any]]:
        """Every object in the bucket: key → its HEAD answer."""
        client = self.client()
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        return {key: client.head_object(Bucket=bucket, Key=key) for key in keys}


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    s3 = MotoS3()
    s3._server.start()
    try:
        yield s3
    finally:
        s3._server.stop()
