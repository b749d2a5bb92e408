"""The SMTP door's log filter: no secret address, in any form aiosmtpd may write it, and no
AUTH exchange reaches a log."""

from __future__ import annotations

import logging

import pytest

from relay.intake.smtp import SecretFilter, mask_addresses

SECRET = "o3nj7lmrihmq5v3azh2daufdlp6s5ljg"


@pytest.mark.parametrize(
    "line",
    [
        f"('127.0.0.1', 5) >> b'RCPT TO:<{SECRET}@relay.localhost>'",
        f"('127.0.0.1', 5) >> b'rcpt to: <{SECRET}+private@relay.localhost> NOTIFY=NEVER'",
        f"('127.0.0.1', 5) >> b'RCPT TO:<\"{SECRET}\"@relay.localhost>'",
        f"('127.0.0.1', 5) >> b'RCPT TO:{SECRET}@relay.localhost'",
        f"('127.0.0.1', 5) >> b'RCPT TO:<{SECRET}>'",
        f"('127.0.0.1', 5) recip: {SECRET}@relay.localhost",
        f"_handle_client readline: b'RCPT TO:<{SECRET}@relay.localhost>\\r\\n'",
    ],
)
def test_every_form_of_a_recipient_is_masked(line: str) -> None:
    masked = mask_addresses(line)
    assert SECRET not in masked
    assert mask_addresses(masked) == masked  # a second pass changes nothing
    if "@" in line:
        assert "@relay.localhost" in masked  # the domain stays: it says which door


def test_one_address_masks_the_same_way_every_time() -> None:
    one = mask_addresses(f"recip: {SECRET}@relay.localhost")
    assert one == mask_addresses(f"recip: {SECRET}@relay.localhost")
    assert one != mask_addresses("recip: other@relay.localhost")


def test_the_filter_rewrites_records_and_hides_auth_exchanges() -> None:
    record = logging.LogRecord(
        "mail.log", logging.INFO, __file__, 1, "%r recip: %s", (("::1", 5), f"{SECRET}@d"), None
    )
    assert SecretFilter().filter(record) and SECRET not in record.getMessage()
    auth = logging.LogRecord(
        "mail.log",
        logging.DEBUG,
        __file__,
        1,
        "%r >> %r",
        (("::1", 5), b"AGFubmEAdG9r"),
        None,
        func="challenge_auth",
    )
    assert SecretFilter().filter(auth) and "AGFubmEAdG9r" not in auth.getMessage()
