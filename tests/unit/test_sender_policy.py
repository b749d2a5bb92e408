"""The sender policy: allowlists, DKIM aligned with the From domain, SPF, with DNS answered by a
local server (no network), and the header facts it reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.mail import sender as policy
from relay.mail.facts import scan_headers
from relay.mail.sender import AddressPolicy, Dns, Incoming
from tests.dnsserver import DkimKey, FakeDns, dkim_key, dns_server


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


@pytest.fixture
def fake_dns(key: DkimKey) -> Iterator[FakeDns]:
    with dns_server() as server:
        server.txt("sel._domainkey.example.org", key.record)
        server.txt("example.org", "v=spf1 ip4:192.0.2.10 -all")
        server.txt("other.example", "v=spf1 ip4:192.0.2.10 -all")
        yield server


def message(sender: str = "Anna <anna@example.org>", subject: str = "Hello") -> bytes:
    return (
        f"From: {sender}\r\nTo: x@relay.localhost\r\nSubject: {subject}\r\n"
        "Message-ID: <m1@example.org>\r\nDate: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\n"
        "A photo from the square.\r\n"
    ).encode()


def judge(
    rule: AddressPolicy,
    raw: bytes,
    fake: FakeDns | None = None,
    *,
    ip: str = "192.0.2.10",
    mail_from: str = "anna@example.org",
    auth_user: str | None = None,
    identify: bool = False,
    resolver: Dns | None = None,
) -> policy.Verdict:
    incoming = Incoming(
        client_ip=ip,
        helo="mail.example.org",
        mail_from=mail_from,
        facts=scan_headers(raw),
        read=lambda: raw,
        auth_user=auth_user,
    )
    resolver = resolver or Dns(fake.address if fake else "127.0.0.1:9", timeout=1.0)
    return policy.evaluate(
        rule, incoming, authserv_id="relay.example", resolver=resolver, identify=identify
    )


DKIM_RULE = AddressPolicy(policy.DKIM)
SPF_RULE = AddressPolicy(policy.SPF)


def test_anyone_passes_without_looking_anything_up(fake_dns: FakeDns) -> None:
    verdict = judge(AddressPolicy(), message(), fake_dns)
    assert verdict.passed and not verdict.authenticated
    assert verdict.auth_results == "relay.example; none"
    assert fake_dns.asked == []


@pytest.mark.parametrize(
    ("entries", "sender", "passed"),
    [
        (("anna@example.org",), "Anna <anna@example.org>", True),
        (("ANNA@Example.ORG",), "anna@example.org", True),
        (("@example.org",), "Bob <bob@example.org>", True),
        (("@example.org",), "mallory@sub.example.org", False),
        (("anna@example.org",), "Bob <bob@example.org>", False),
        ((), "anna@example.org", False),  # an empty allowlist lets no one in
    ],
)
def test_allowlist(entries: tuple[str, ...], sender: str, passed: bool) -> None:
    verdict = judge(AddressPolicy(policy.ALLOWLIST, entries), message(sender))
    assert verdict.passed is passed


def test_two_from_fields_match_no_allowlist() -> None:
    raw = b"From: anna@example.org\r\nFrom: mallory@evil.example\r\n\r\nhi\r\n"
    assert not judge(AddressPolicy(policy.ALLOWLIST, ("anna@example.org",)), raw).passed


def test_dkim_pass_aligned_with_the_from_domain(fake_dns: FakeDns, key: DkimKey) -> None:
    verdict = judge(DKIM_RULE, key.sign(message(), "example.org"), fake_dns)
    assert verdict.passed and verdict.authenticated
    assert "dkim=pass header.d=example.org header.s=sel" in verdict.auth_results
    assert ("sel._domainkey.example.org", "TXT") in fake_dns.asked


def test_dkim_of_a_parent_domain_is_aligned(fake_dns: FakeDns, key: DkimKey) -> None:
    raw = key.sign(message("anna@mail.example.org"), "example.org")
    assert judge(DKIM_RULE, raw, fake_dns).passed


def test_dkim_of_another_domain_is_not_enough(fake_dns: FakeDns, key: DkimKey) -> None:
    fake_dns.txt("sel._domainkey.other.example", key.record)
    verdict = judge(DKIM_RULE, key.sign(message(), "other.example"), fake_dns)
    assert "dkim=pass header.d=other.example" in verdict.auth_results
    assert not verdict.passed and not verdict.authenticated


def test_dkim_fails_on_a_changed_body(fake_dns: FakeDns, key: DkimKey) -> None:
    raw = key.sign(message(), "example.org").replace(b"square", b"squirt")
    verdict = judge(DKIM_RULE, raw, fake_dns)
    assert not verdict.passed
    assert "dkim=fail" in verdict.auth_results


def test_dkim_fails_on_a_changed_subject(fake_dns: FakeDns, key: DkimKey) -> None:
    raw = key.sign(message(), "example.org").replace(b"Subject: Hello", b"Subject: Hi all")
    assert not judge(DKIM_RULE, raw, fake_dns).passed


def test_dkim_with_a_body_length_limit_does_not_count(fake_dns: FakeDns, key: DkimKey) -> None:
    raw = key.sign(message(), "example.org", length=True)
    verdict = judge(DKIM_RULE, raw + b"Appended by anyone.\r\n", fake_dns)
    assert not verdict.passed
    assert "dkim=policy" in verdict.auth_results


def test_unsigned_mail_fails_dkim(fake_dns: FakeDns) -> None:
    verdict = judge(DKIM_RULE, message(), fake_dns)
    assert not verdict.passed and "dkim=none" in verdict.auth_results


def test_dkim_without_dns_is_a_temporary_error(key: DkimKey) -> None:
    verdict = judge(DKIM_RULE, key.sign(message(), "example.org"), resolver=Dns("127.0.0.1:9", 0.5))
    assert not verdict.passed and "dkim=temperror" in verdict.auth_results


def test_dkim_with_an_allowlist_needs_both(fake_dns: FakeDns, key: DkimKey) -> None:
    raw = key.sign(message("bob@example.org"), "example.org")
    assert judge(DKIM_RULE, raw, fake_dns).passed
    listed = AddressPolicy(policy.DKIM, ("anna@example.org",))
    assert not judge(listed, raw, fake_dns).passed


def test_spf_pass_and_fail(fake_dns: FakeDns) -> None:
    verdict = judge(SPF_RULE, message(), fake_dns)
    assert verdict.passed and verdict.authenticated
    assert "spf=pass smtp.mailfrom=anna@example.org" in verdict.auth_results
    refused = judge(SPF_RULE, message(), fake_dns, ip="198.51.100.7")
    assert not refused.passed and "spf=fail" in refused.auth_results


def test_spf_for_another_domain_than_the_from_is_not_enough(fake_dns: FakeDns) -> None:
    verdict = judge(SPF_RULE, message(), fake_dns, mail_from="bounce@other.example")
    assert "spf=pass" in verdict.auth_results
    assert not verdict.passed


def test_spf_without_a_record_is_none(fake_dns: FakeDns) -> None:
    verdict = judge(SPF_RULE, message("a@nowhere.example"), fake_dns, mail_from="a@nowhere.example")
    assert not verdict.passed and "spf=none" in verdict.auth_results


def test_dkim_or_spf(fake_dns: FakeDns, key: DkimKey) -> None:
    either = AddressPolicy(policy.DKIM_OR_SPF)
    assert judge(either, message(), fake_dns).passed  # SPF alone
    signed = key.sign(message(), "example.org")
    assert judge(either, signed, fake_dns, ip="198.51.100.7").passed  # DKIM alone
    assert not judge(either, message(), fake_dns, ip="198.51.100.7").passed


def test_the_owner_logged_in_passes_any_policy(fake_dns: FakeDns) -> None:
    verdict = judge(DKIM_RULE, message("someone@else.example"), fake_dns, auth_user="anna")
    assert verdict.passed and verdict.authenticated
    assert verdict.auth_results == "relay.example; auth=pass smtp.auth=anna"
    assert fake_dns.asked == []


def test_identify_checks_the_sender_under_anyone(fake_dns: FakeDns, key: DkimKey) -> None:
    signed = key.sign(message(), "example.org")
    verdict = judge(AddressPolicy(), signed, fake_dns, ip="198.51.100.7", identify=True)
    assert verdict.passed and verdict.authenticated
    forged = judge(AddressPolicy(), message(), fake_dns, ip="198.51.100.7", identify=True)
    assert forged.passed and not forged.authenticated


def test_an_unknown_policy_fails_closed() -> None:
    assert not judge(AddressPolicy("dmarc-maybe"), message()).passed


def test_hostile_envelope_values_stay_on_one_line(fake_dns: FakeDns) -> None:
    verdict = judge(SPF_RULE, message(), fake_dns, mail_from="a\r\nX-Evil: 1@example.org")
    assert "\r" not in verdict.auth_results and "\n" not in verdict.auth_results


def test_proven_by_reads_a_stored_verdict() -> None:
    users, domains = policy.proven_by(
        "relay.example; dkim=pass header.d=Example.org; dkim=fail header.d=evil.example; "
        "spf=pass smtp.mailfrom=b@other.example; auth=pass smtp.auth=anna"
    )
    assert users == {"anna"} and domains == {"example.org", "other.example"}
    assert policy.proven_by("garbage ;;; ===") == (set(), set())
    assert policy.proven_by(None) == (set(), set())


def test_alignment() -> None:
    assert policy.aligned("example.org", "example.org")
    assert policy.aligned("example.org", "mail.example.org")
    assert not policy.aligned("mail.example.org", "example.org")
    assert not policy.aligned("org", "example.org")
    assert not policy.aligned("ample.org", "example.org")
