"""Prometheus metrics, in one registry per process (exported at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

smtp_messages = Counter(
    "relay_smtp_messages",
    "Messages answered after DATA, by outcome",
    ["outcome"],
    registry=registry,
)
smtp_recipients_refused = Counter(
    "relay_smtp_recipients_refused", "RCPT TO refused", registry=registry
)
http_uploads = Counter(
    "relay_http_uploads", "Upload requests, by outcome", ["outcome"], registry=registry
)
doors_first_held = Counter(
    "relay_doors_first_held_seconds",
    "Seconds media jobs waited while the doors took in a burst (RELAY_DOORS_FIRST_SECONDS)",
    registry=registry,
)
accepted_bytes = Counter(
    "relay_accepted_bytes", "Bytes spooled and acknowledged", ["door"], registry=registry
)
items_processed = Counter(
    "relay_items_processed",
    "Items finished, by kind and status",
    ["kind", "status"],
    registry=registry,
)
processing_seconds = Histogram(
    "relay_processing_seconds",
    "Time to process one item",
    ["kind"],
    registry=registry,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
job_retries = Counter(
    "relay_job_retries", "Jobs scheduled again after an error", ["kind"], registry=registry
)
jobs_by_status = Gauge("relay_jobs", "Jobs in the queue, by status", ["status"], registry=registry)
