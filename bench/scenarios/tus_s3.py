"""tus uploads on S3: 200 MB (40 MB with ``--quick``) in 8 MiB PATCHes to a relay whose store is
an S3 bucket (moto's server over HTTP on 127.0.0.1), against a bare boto3 multipart upload of the
same bytes in 5 MiB parts to the same endpoint. The relay's figure includes what finishing costs
with the local spool today: completing the multipart upload and fetching the object back into
the spool (a spool in the object store would take the object as it is).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from bench import clients
from bench.harness import (
    MB,
    Context,
    MemorySampler,
    Result,
    Target,
    bench_user,
    relay_pid,
    relay_serve,
    unavailable,
)
from bench.scenarios import Scenario
from bench.scenarios.tus import CHUNK, TUS

MIB = 1024 * 1024
PART = 5 * MIB
CHUNKS = (CHUNK, 2 * PART)
"""8 MiB PATCHes (``relay upload``'s default), and 10 MiB, a multiple of the part size."""
REGION = "eu-north-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "relay-bench-key",
    "AWS_SECRET_ACCESS_KEY": "relay-bench-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _missing() -> str | None:
    if importlib.util.find_spec("moto") is None:
        return "moto is not installed (pip install -e '.[test]')"
    if importlib.util.find_spec("relay.intake.tus_s3") is None:
        return "relay/intake/tus_s3.py does not exist yet"
    return None


@contextmanager
def _moto() -> Iterator[str]:
    """moto's S3 server on a free port: its endpoint."""
    from moto.server import ThreadedMotoServer

    from tests.server import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _bucket(client: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def _bare_multipart(client: Any, bucket: str, size: int) -> float:
    """A multipart upload of ``size`` random bytes in 5 MiB parts, one after another; seconds."""
    block = os.urandom(PART)
    started = time.perf_counter()
    key = "bare/upload.bin"
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts, sent, number = [], 0, 1
    while sent < size:
        body = block[: min(PART, size - sent)]
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        sent += len(body)
        number += 1
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return time.perf_counter() - started


async def _upload(port: int, auth: dict[str, str], size: int, chunk: int) -> tuple[float, float]:
    """Create an upload and PATCH it in ``chunk``-sized requests: (wall seconds of all, of the
    last PATCH, which also completes the multipart upload and makes the post)."""
    started = time.perf_counter()
    meta = "filename " + base64.b64encode(b"upload.bin").decode()
    created = await clients.http_request(
        port,
        "POST",
        "/api/v1/tus/",
        {**TUS, **auth, "Upload-Length": str(size), "Upload-Metadata": meta},
    )
    if created.status != 201:
        raise RuntimeError(f"tus create answered {created.status}: {created.body[:300]!r}")
    path = urlparse(created.headers["location"]).path
    offset, last = 0, 0.0
    while offset < size:
        length = min(chunk, size - offset)
        headers = {
            **TUS,
            **auth,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        }
        began = time.perf_counter()
        answer = await clients.http_request(
            port, "PATCH", path, headers, clients.blocks(length), length
        )
        if answer.status != 204:
            raise RuntimeError(f"PATCH at {offset} answered {answer.status}: {answer.body[:300]!r}")
        offset = int(answer.headers["upload-offset"])
        last = time.perf_counter() - began
    return time.perf_counter() - started, last


def _throughput(ctx: Context) -> list[Result]:
    labels = {chunk: f"tus on S3, {chunk // MIB} MiB chunks" for chunk in CHUNKS}
    reason = _missing()
    if reason:
        return unavailable([(label, "MB/s") for label in labels.values()], reason)
    size = 40 * MB if ctx.quick else 200 * MB
    baseline = 0.0
    best: dict[int, tuple[float, float, float]] = {chunk: (0.0, 0.0, 0.0) for chunk in CHUNKS}
    memory_mb = dict.fromkeys(CHUNKS, 0.0)
    with _moto() as endpoint:
        client = _client(endpoint)
        for round_ in range(ctx.rounds):
            ctx.log(f"tus-s3 round {round_ + 1}: boto3 multipart, {size // MB} MB")
            bucket = _bucket(client)
            baseline = max(baseline, size / MB / _bare_multipart(client, bucket, size))
            for chunk in CHUNKS:
                ctx.log(f"tus-s3 round {round_ + 1}: relay, {chunk // MIB} MiB PATCHes")
                bucket = _bucket(client)
                folder = ctx.scratch("tus-s3-relay")
                env = {
                    **CREDENTIALS,
                    "RELAY_WORKERS": "0",
                    "RELAY_STORAGE_URL": f"s3://{bucket}/media",
                    "RELAY_S3_ENDPOINT_URL": endpoint,
                }
                try:
                    with relay_serve(folder, **env) as relay:
                        auth = bench_user(relay)
                        with MemorySampler(relay_pid(relay)) as memory:
                            took, last = asyncio.run(_upload(relay.http_port, auth, size, chunk))
                    if size / MB / took > best[chunk][0]:
                        best[chunk] = (size / MB / took, took - last, last)
                    memory_mb[chunk] = max(memory_mb[chunk], memory.growth_mb)
                finally:
                    ctx.drop(folder)
    return [
        Result(
            labels[chunk],
            "MB/s",
            relay=best[chunk][0],
            baseline=baseline,
            target=Target(">=", 0.8),
            memory_mb=memory_mb[chunk],
            note=f"{size // MB} MB; baseline: boto3 multipart, 5 MiB parts; relay: "
            f"{best[chunk][1]:.1f} s for all PATCHes but the last "
            + ("(each re-sends a tail), " if chunk % PART else "(no tails), ")
            + f"{best[chunk][2]:.1f} s for the last (completion, the fetch into the local "
            f"spool, the post); best of {ctx.rounds}",
        )
        for chunk in CHUNKS
    ]


SCENARIOS = [
    Scenario(
        "tus-s3", "tus-s3", "tus on an S3 store vs a bare boto3 multipart upload", _throughput
    ),
]
