"""A broadcast watched through any node: two ``relay serve`` on one PostgreSQL database and one
S3 bucket (moto's server), the phone pushing RTMP to node A only, a viewer asking node B."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tests.clips import probe, stream
from tests.contract.s3server import MotoS3
from tests.e2e.test_live import add_key, live_posts, pushing, wait_for
from tests.e2e.test_two_nodes import _node_env
from tests.server import RelayServer
from tests.tcpproxy import TcpProxy

StartRelay = Callable[..., RelayServer]


def _listed(node: RelayServer, post_id: str) -> list[str]:
    """The segment URIs node's live playlist lists now (none before it is there)."""
    response = httpx.get(f"{node.url}/live/{post_id}/index.m3u8", timeout=30)
    if response.status_code != 200:
        return []
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    return [line for line in response.text.splitlines() if line and not line.startswith("#")]


def _names(uris: list[str]) -> list[str]:
    """Segment file names of URIs (presigned links differ on each ask; the object does not)."""
    return [urlparse(uri).path.rsplit("/", 1)[-1] for uri in uris]


def _live_objects(s3: MotoS3, bucket: str) -> list[str]:
    return [key for key in s3.list(bucket) if key.startswith("site/live/")]


def _decodes(uri_or_response: httpx.Response, where: Path) -> dict[str, object]:
    assert uri_or_response.status_code == 200, uri_or_response.text
    where.write_bytes(uri_or_response.content)
    info = probe(where)
    assert stream(info, "video")["codec_name"] == "h264"  # type: ignore[index]
    assert stream(info, "audio")["codec_name"] == "aac"  # type: ignore[index]
    assert 1.5 <= float(info["format"]["duration"]) <= 2.6  # 2 s segments
    return info


def test_a_broadcast_taken_by_one_node_plays_from_another(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    env = _node_env(postgres, bucket, s3.endpoint)
    taker = start_relay(tmp_path / "a", **env)
    viewer = start_relay(tmp_path / "b", **env)
    anna = taker.add_user("anna")
    token = anna["token"]
    key = add_key(taker)
    assert f":{taker.rtmp_port}/" in key["rtmp_url"]

    with pushing(key["rtmp_url"], 12) as sender:
        [post] = wait_for(lambda: live_posts(viewer, token), message="no live post")
        post_id = post["id"]
        assert not (tmp_path / "b" / "live").exists() or not any(
            (tmp_path / "b" / "live").rglob(post_id)
        )  # node B has nothing of it on its disk: what it serves comes from the store
        first = wait_for(lambda: _listed(viewer, post_id), 30, "no segment on node B")
        grown = wait_for(
            lambda: len(_listed(viewer, post_id)) > len(first) and _listed(viewer, post_id), 30
        )
        assert _names(grown)[: len(first)] == _names(first) and sender.poll() is None  # live
        # Node B's playlist links the store; each segment decodes.
        with httpx.Client(follow_redirects=True, timeout=30) as client:
            _decodes(client.get(grown[0]), tmp_path / "first.ts")
            # A player that had the playlist from node A asks node B for a segment by name.
            by_name = client.get(f"{viewer.url}/live/{post_id}/{_names(grown)[1]}")
            assert by_name.history and by_name.history[0].status_code == 302
            _decodes(by_name, tmp_path / "second.ts")
        # Node A, which takes it in, serves the same segments from its disk, as before.
        assert _names(_listed(taker, post_id))[: len(first)] == _names(first)
        assert _live_objects(s3, bucket)  # the store holds the broadcast while it runs
        sender.wait(60)
        assert sender.returncode == 0

    def replayed() -> bool:
        with viewer.client(token) as client:
            return client.get(f"/api/v1/posts/{post_id}").json()["text"].startswith("Replay")

    wait_for(replayed, 180, "no replay")
    # Once the replay is ready the live copy in the store has done its part.
    wait_for(lambda: not _live_objects(s3, bucket), 60, "live objects left in the store")
    assert httpx.get(f"{viewer.url}/live/{post_id}/index.m3u8", timeout=30).status_code == 404


def test_a_store_away_mid_broadcast_delays_the_other_nodes_playlist_and_drops_nothing(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    env = _node_env(postgres, bucket, s3.endpoint)
    with TcpProxy(("127.0.0.1", s3.port)) as proxy:
        # Node A reaches the bucket through a line the test cuts; node B (the viewer's) directly.
        taker = start_relay(
            tmp_path / "a", **{**env, "RELAY_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
        )
        viewer = start_relay(tmp_path / "b", **env)
        token = taker.add_user("anna")["token"]
        key = add_key(taker)
        with pushing(key["rtmp_url"], 24) as sender:
            [post] = wait_for(lambda: live_posts(viewer, token), message="no live post")
            post_id = post["id"]
            wait_for(lambda: _listed(viewer, post_id), 30, "no segment on node B")
            proxy.cut()
            before = _names(_listed(viewer, post_id))
            # The taking node goes on making segments it cannot store: node B lags behind it.
            wait_for(lambda: len(_listed(taker, post_id)) >= len(before) + 2, 30)
            stale = _listed(viewer, post_id)
            assert len(stale) < len(_listed(taker, post_id))
            with httpx.Client(timeout=30) as client:  # what B lists is in the bucket
                assert all(client.get(uri).status_code == 200 for uri in stale)
            proxy.restore()
            made = _names(_listed(taker, post_id))
            caught_up = wait_for(lambda: len(_listed(viewer, post_id)) >= len(made), 30)
            assert sender.poll() is None  # still live
            names = _names(_listed(viewer, post_id))
            # Every segment, none skipped: s00000.ts, s00001.ts, … as node A made them.
            assert names[: len(made)] == made == [f"s{n:05d}.ts" for n in range(len(made))]
            assert caught_up
            with httpx.Client(timeout=30) as client:
                for uri in _listed(viewer, post_id):
                    _decodes(client.get(uri), tmp_path / "s.ts")
            sender.wait(60)
            assert sender.returncode == 0
    assert "Traceback" not in taker.log.read_text()


def test_a_post_deleted_while_live_leaves_no_live_objects_in_the_store(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    env = _node_env(postgres, bucket, s3.endpoint)
    taker = start_relay(tmp_path / "a", **env)
    viewer = start_relay(tmp_path / "b", **env)
    token = taker.add_user("anna")["token"]
    key = add_key(taker)
    with pushing(key["rtmp_url"], 14) as sender:
        [post] = wait_for(lambda: live_posts(viewer, token), message="no live post")
        post_id = post["id"]
        wait_for(lambda: _listed(viewer, post_id), 30, "no segment on node B")
        assert _live_objects(s3, bucket)
        with viewer.client(token) as client:
            assert client.delete(f"/api/v1/posts/{post_id}").status_code in (200, 204)
        # Gone at once from every node, and from the bucket, also what A makes after the delete.
        assert httpx.get(f"{viewer.url}/live/{post_id}/index.m3u8", timeout=30).status_code == 404
        # Node A stops copying the broadcast at once, the sender still sending.
        wait_for(lambda: f"live {post_id}: the post is deleted" in taker.log.read_text(), 30)
        assert sender.poll() is None
        wait_for(lambda: not _live_objects(s3, bucket), 30, "live objects left in the store")
        sender.wait(60)
    # Node A is done with the broadcast: it stored nothing more after the delete.
    wait_for(lambda: f"live {post_id}: over after" in taker.log.read_text(), 60)
    assert not _live_objects(s3, bucket)
    assert "Traceback" not in taker.log.read_text()
