"""A deleted post's originals and renditions leave an S3 bucket too (moto over real HTTP)."""

from __future__ import annotations

import uuid

from tests.contract.s3server import AWS_ENV, MotoS3
from tests.e2e.test_post_life import events, wait_for


def test_delete_empties_the_bucket_of_the_posts_media(s3: MotoS3, start_relay) -> None:
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    relay = start_relay(
        **AWS_ENV, RELAY_STORAGE_URL=f"s3://{bucket}/m", RELAY_S3_ENDPOINT_URL=s3.endpoint
    )
    token = relay.add_user("anna")["token"]
    keep = relay.wait_post(token, relay.upload(token, title="Stannar")["id"])
    gone = relay.wait_post(token, relay.upload(token, title="Går")["id"])
    assert any(f"/{gone['id']}/" in key for key in s3.list(bucket))
    with relay.client(token) as client:
        assert client.delete(f"/api/v1/posts/{gone['id']}").status_code == 204
    wait_for(lambda: not any(f"/{gone['id']}/" in k for k in s3.list(bucket)), "the objects gone")
    assert any(f"/{keep['id']}/" in key for key in s3.list(bucket))  # only that post's
    [deleted] = [e for e in events(relay, token, gone["id"]) if e["kind"] == "deleted"]
    assert deleted["detail"]["originals"][0]["sha256"] == gone["items"][0]["original"]["sha256"]
    with relay.client(token) as client:
        after = client.get(f"/api/v1/posts/{gone['id']}").json()
    assert after["state"] == "deleted" and after["items"][0]["renditions"] == []
