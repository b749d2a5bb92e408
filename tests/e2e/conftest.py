"""Fixtures the end-to-end tests on S3 share: moto's S3 server over HTTP and a fresh bucket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.contract.s3server import MotoS3, moto_s3


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def bucket(s3: MotoS3) -> str:
    # moto keeps its buckets for the life of the process: one fresh bucket per test.
    name = f"relay-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name
