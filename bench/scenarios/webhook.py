"""End to end: mail a 3 MB phone photo, time until the signed webhook for its post arrives.

A real ``relay serve`` with its default two workers and a webhook destination on a local
receiver. Mails go one at a time; each one's latency runs from opening the SMTP connection to
the receiver holding a ``post.published`` whose signature verifies (Standard Webhooks).
"""

from __future__ import annotations

import json
import math
import smtplib
import threading
import time

from bench import media
from bench.harness import Context, MemorySampler, Result, Target, relay_pid, relay_serve
from bench.scenarios import Scenario
from tests.media import iphone_mail
from tests.receivers import Received, webhook_receiver

WAIT = 30.0  # seconds one mail may take before the run is called broken


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _run(ctx: Context) -> list[Result]:
    from standardwebhooks import Webhook

    count = 5 if ctx.quick else 50
    photo = media.photo_jpeg()
    arrived: dict[str, float] = {}
    signal = threading.Condition()
    bad: list[str] = []

    def answer(received: Received) -> int:
        with signal:
            try:
                post_id = json.loads(received.body)["post"]["id"]
                verifier.verify(received.body, received.headers)
            except Exception as exc:  # recorded and raised in the main thread
                bad.append(repr(exc))
                post_id = "?"
            arrived.setdefault(post_id, time.monotonic())
            signal.notify_all()
        return 200

    folder = ctx.scratch("webhook")
    latencies: list[float] = []
    try:
        with (
            webhook_receiver(answer) as receiver,
            relay_serve(folder, RELAY_ALLOW_PRIVATE_DESTINATIONS="true") as relay,
        ):
            user = relay.add_user("bench")
            made = json.loads(
                relay.cli(
                    "destination", "add", "--user", "bench", "--type", "webhook",
                    "--url", receiver.url, "--json",
                ).stdout
            )  # fmt: skip
            verifier = Webhook(made["secret"])
            ctx.log(f"webhook: {count} mails of {len(photo) / 1e6:.1f} MB, one at a time")
            with MemorySampler(relay_pid(relay)) as memory:
                for number in range(count):
                    message = iphone_mail(user["address"], photo, subject=f"Bild {number}")
                    started = time.monotonic()
                    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=WAIT) as smtp:
                        smtp.ehlo("bench.localhost")
                        smtp.mail("anna@example.se")
                        code, text = smtp.rcpt(user["address"])
                        if code != 250:
                            raise RuntimeError(f"RCPT: {code} {text!r}")
                        code, text = smtp.data(message)
                    if code != 250:
                        raise RuntimeError(f"DATA: {code} {text!r}")
                    post_id = text.decode().rsplit(" ", 1)[-1]
                    with signal:
                        if not signal.wait_for(lambda p=post_id: p in arrived or bad, WAIT):
                            raise RuntimeError(f"no webhook for post {post_id} in {WAIT:.0f} s")
                    if bad:
                        raise RuntimeError(f"webhook did not verify: {bad[0]}")
                    latencies.append(arrived[post_id] - started)
    finally:
        ctx.drop(folder)
    note = f"{count} mails of {len(photo) / 1e6:.1f} MB, sequential; signature verified"
    return [
        Result(
            f"mail → webhook p{round(q * 100)}",
            "s",
            relay=_percentile(latencies, q),
            target=Target("<=", limit, on="relay", unit="s"),
            memory_mb=memory.growth_mb,
            note=note,
        )
        for q, limit in ((0.5, 1.0), (0.99, 2.0))
    ]


SCENARIOS = [Scenario("webhook", "webhook", "mail a 3 MB photo → signed webhook latency", _run)]
