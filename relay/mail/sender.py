"""Who may post through a secret address: the address's sender policy, checked at the end of DATA.

- ``anyone`` (the default): whoever knows the address.
- ``allowlist``: the From address is one of the address's allowed senders (``anna@example.org``)
  or in one of its domains (``@example.org``). Unauthenticated: a From line is easy to forge, so
  this only keeps out strangers who learned the address, not someone who targets the owner.
- ``dkim``: a DKIM signature that verifies, made by the From domain or a parent of it (``d=``
  equal to the From domain, or the From domain a subdomain of it), over the whole body (a
  signature with ``l=`` could have anything appended and does not count).
- ``spf``: SPF ``pass`` for the client's IP and the envelope sender's domain, and that domain
  aligned with the From domain the same way (otherwise an SPF pass says nothing about the From).
- ``dkim-or-spf``: either.

With ``dkim``, ``spf`` or ``dkim-or-spf`` a non-empty allowlist also applies to the From address:
anyone with an account at a big provider passes DKIM for its domain, so "DKIM for anna@gmail.com"
is the useful rule. A user who logged in with SMTP AUTH and mails one of their own addresses
passes every policy. The verdict is kept on the post as an RFC 8601 Authentication-Results value.

DNS goes through :class:`Dns` (the system resolver, or ``RELAY_DNS_SERVERS``) and tests hand in
their own answers: dkimpy takes a ``dnsfunc``; pyspf looks up through its module-level
``DNSLookup``, which is routed here through a context variable so a check in one thread never
sees another's resolver.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import authres
import dkim
import dns.exception
import dns.nameserver
import dns.resolver
import spf

from relay.mail.facts import HeaderFacts

log = logging.getLogger("relay.policy")

ANYONE, ALLOWLIST, DKIM, SPF, DKIM_OR_SPF = "anyone", "allowlist", "dkim", "spf", "dkim-or-spf"
POLICIES = (ANYONE, ALLOWLIST, DKIM, SPF, DKIM_OR_SPF)

MAX_SIGNATURES = 5
"""DKIM signatures tried per message; each may cost a DNS lookup and an RSA verify."""
DNS_SECONDS = 5.0
SPF_SECONDS = 20.0
"""RFC 7208 4.6.4: at least 20 seconds for the whole SPF evaluation."""

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    policy: str = ANYONE
    allowed: tuple[str, ...] = ()


@dataclass(slots=True)
class Incoming:
    """One message as the policy sees it."""

    client_ip: str
    helo: str
    mail_from: str
    """The envelope sender; empty for a null reverse path (a bounce)."""
    facts: HeaderFacts
    read: Callable[[], bytes]
    """The message as received (without the relay's Received line); read only for DKIM."""
    auth_user: str | None = None
    """Set when the client logged in (SMTP AUTH) as the owner of the recipient address."""


@dataclass(slots=True)
class Verdict:
    passed: bool
    auth_results: str
    """An Authentication-Results value: ``authserv-id; method=result …``."""
    authenticated: bool
    """The From address is proven: AUTH as the owner, or an aligned DKIM or SPF pass."""
    reason: str


@dataclass(frozen=True, slots=True)
class DkimSignature:
    domain: str
    selector: str
    result: str


# --- DNS ---------------------------------------------------------------------------------------


class Dns:
    """Lookups for DKIM keys and SPF records, with the system's resolver or given servers
    (``host[:port]``, comma-separated; IPv6 in brackets)."""

    def __init__(self, servers: str = "", timeout: float = DNS_SECONDS) -> None:
        self.servers = [s.strip() for s in servers.split(",") if s.strip()]
        self.timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None

    @property
    def resolver(self) -> dns.resolver.Resolver:
        # Made on first use: without servers it reads resolv.conf, which a relay that never
        # checks a sender need not have.
        if self._resolver is None:
            resolver = dns.resolver.Resolver(configure=not self.servers)
            if self.servers:
                resolver.nameservers = [_nameserver(s) for s in self.servers]
            resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    def resolve(self, name: str, qtype: str, timeout: float | None = None) -> list[Any]:
        """The records, or [] when the name or the type does not exist; DNS trouble raises
        ``dns.exception.DNSException``."""
        try:
            answer = self.resolver.resolve(
                name, qtype, lifetime=min(timeout or self.timeout, self.timeout), search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return list(answer)

    def dkim_txt(self, name: bytes | str, timeout: float = DNS_SECONDS) -> bytes | None:
        """dkimpy's ``dnsfunc``: the first TXT record of ``name``, its strings joined."""
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        for record in self.resolve(text, "TXT", timeout):
            return b"".join(record.strings)
        return None

    def spf_lookup(
        self, name: str, qtype: str, strict: bool = True, timeout: float = DNS_SECONDS
    ) -> list[tuple[tuple[str, str], Any]]:
        """pyspf's ``DNSLookup``: ``[((name, qtype), value), …]``."""
        try:
            records = self.resolve(name, qtype, timeout)
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        found: list[tuple[tuple[str, str], Any]] = []
        for rdata in records:
            if qtype in ("A", "AAAA"):
                found.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                found.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                found.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                found.append(((name, qtype), rdata.strings))
        return found


def _nameserver(value: str) -> dns.nameserver.Nameserver:
    host, port = value, 53
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = int(port_text)
    return dns.nameserver.Do53Nameserver(host, port)


_SPF_DNS: contextvars.ContextVar[Dns | None] = contextvars.ContextVar("relay_spf_dns", default=None)
_system_spf_lookup = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 30) -> list[Any]:
    chosen = _SPF_DNS.get()
    if chosen is None:
        return _system_spf_lookup(name, qtype, strict, timeout)
    return chosen.spf_lookup(name, qtype, strict, timeout)


spf.DNSLookup = _spf_lookup


# --- the checks ---------------------------------------------------------------------------------


def domain_of(address: str | None) -> str | None:
    if not address:
        return None
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    return domain if _DOMAIN.fullmatch(domain) else None


def aligned(signer: str | None, from_domain: str | None) -> bool:
    """``signer`` vouches for ``from_domain``: the same domain or a parent of it. Only who runs
    a domain's DNS can pass DKIM or SPF for it, so a parent (never a bare TLD) is safe."""
    if not signer or not from_domain or "." not in signer:
        return False
    return from_domain == signer or from_domain.endswith("." + signer)


def allowed(address: str | None, entries: tuple[str, ...]) -> bool:
    """``address`` is listed, or its domain is (``@example.org``); case does not matter."""
    if not address:
        return False
    wanted = address.lower()
    domain = wanted.rpartition("@")[2]
    for entry in entries:
        entry = entry.strip().lower()
        if entry and (entry == wanted or (entry.startswith("@") and entry[1:] == domain)):
            return True
    return False


def check_dkim(message: bytes, resolver: Dns) -> list[DkimSignature]:
    """Each of the first DKIM signatures and its result (``pass``, ``fail``, ``policy`` for a
    valid one that covers only part of the body, ``temperror`` for DNS trouble)."""
    try:
        signer = dkim.DKIM(message, timeout=int(resolver.timeout) or 1)
    except Exception:
        return []
    count = sum(1 for name, _ in signer.headers if name.lower() == b"dkim-signature")
    found = []
    for idx in range(min(count, MAX_SIGNATURES)):
        signer.signature_fields = {}  # a signature that fails to parse leaves the last one's
        try:
            result = "pass" if signer.verify(idx=idx, dnsfunc=resolver.dkim_txt) else "fail"
        except dns.exception.DNSException:
            result = "temperror"
        except Exception:  # malformed signature or key (dkim.DKIMException and worse)
            result = "fail"
        fields = signer.signature_fields or {}
        if result == "pass" and b"l" in fields:
            result = "policy"
        domain = _text(fields.get(b"d", b"")).lower().rstrip(".")
        selector = _text(fields.get(b"s", b""))
        found.append(
            DkimSignature(
                domain if _DOMAIN.fullmatch(domain) else "",
                selector if re.fullmatch(r"[A-Za-z0-9._-]{1,100}", selector) else "",
                result,
            )
        )
    return found


def check_spf(ip: str, mail_from: str, helo: str, resolver: Dns) -> tuple[str, str]:
    token = _SPF_DNS.set(resolver)
    try:
        result, explanation = spf.check2(i=ip, s=mail_from, h=helo, querytime=SPF_SECONDS)
    except Exception as exc:  # a peer address pyspf cannot read, or a bug on hostile records
        log.debug("SPF check failed", exc_info=True)
        return "temperror", str(exc)
    finally:
        _SPF_DNS.reset(token)
    return str(result), str(explanation)


def evaluate(
    rule: AddressPolicy,
    incoming: Incoming,
    *,
    authserv_id: str,
    resolver: Dns,
    identify: bool = False,
) -> Verdict:
    """The verdict of ``rule`` on ``incoming``. ``identify``: check DKIM and SPF even when the
    policy does not need them, to know whether the sender is proven (a reply is sent only then).
    Blocking (DNS, RSA): run it in a thread."""
    facts = incoming.facts
    # Two From fields name two senders: neither is proven, and neither is listed.
    from_address = facts.sender if facts.from_count == 1 else None
    from_domain = domain_of(from_address)
    results: list[authres.BaseAuthenticationResult] = []
    if incoming.auth_user:
        user = _clean(incoming.auth_user)
        results.append(authres.SMTPAUTHAuthenticationResult(result="pass", smtp_auth=user))
        return Verdict(True, _header(authserv_id, results), True, "smtp auth")

    dkim_ok = spf_ok = False
    if rule.policy in (DKIM, DKIM_OR_SPF) or identify:
        try:
            signatures = check_dkim(incoming.read(), resolver)
        except OSError:
            log.exception("reading the spooled message for DKIM failed")
            signatures = []
        for sig in signatures:
            results.append(
                authres.DKIMAuthenticationResult(
                    result=sig.result, header_d=sig.domain or None, header_s=sig.selector or None
                )
            )
        if not signatures:
            results.append(authres.DKIMAuthenticationResult(result="none"))
        dkim_ok = any(s.result == "pass" and aligned(s.domain, from_domain) for s in signatures)
    if rule.policy in (SPF, DKIM_OR_SPF) or identify:
        mail_from = _clean(incoming.mail_from)
        helo = _clean(incoming.helo)
        result, _ = check_spf(incoming.client_ip, mail_from, helo, resolver)
        results.append(
            authres.SPFAuthenticationResult(
                result=result,
                smtp_mailfrom=mail_from or None,
                smtp_helo=None if mail_from else helo,
            )
        )
        spf_domain = domain_of(mail_from) if mail_from else domain_of("@" + helo)
        spf_ok = result == "pass" and aligned(spf_domain, from_domain)

    listed = allowed(from_address, rule.allowed) if rule.allowed else True
    if rule.policy == ANYONE:
        passed, reason = True, "anyone"
    elif rule.policy == ALLOWLIST:
        passed, reason = bool(rule.allowed) and listed, "allowlist"
    elif rule.policy == DKIM:
        passed, reason = dkim_ok and listed, "dkim"
    elif rule.policy == SPF:
        passed, reason = spf_ok and listed, "spf"
    elif rule.policy == DKIM_OR_SPF:
        passed, reason = (dkim_ok or spf_ok) and listed, "dkim-or-spf"
    else:  # a value this version does not know: fail closed
        passed, reason = False, f"unknown policy {rule.policy!r}"
    return Verdict(passed, _header(authserv_id, results), dkim_ok or spf_ok, reason)


def proven_by(auth_results: str | None) -> tuple[set[str], set[str]]:
    """From a stored verdict: the SMTP AUTH users and the domains (DKIM ``d=``, SPF sender
    domain) that passed. Unreadable values prove nothing."""
    users: set[str] = set()
    domains: set[str] = set()
    if not auth_results:
        return users, domains
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(auth_results)
    except Exception:
        return users, domains
    for result in parsed.results:
        if str(result.result).lower() != "pass":
            continue
        props = {(p.type.lower(), p.name.lower()): str(p.value) for p in result.properties}
        method = str(result.method).lower()
        if method == "auth" and ("smtp", "auth") in props:
            users.add(props[("smtp", "auth")])
        elif method == "dkim" and (domain := domain_of("@" + props.get(("header", "d"), ""))):
            domains.add(domain)
        elif method == "spf":
            sender = props.get(("smtp", "mailfrom")) or "@" + props.get(("smtp", "helo"), "")
            if domain := domain_of(sender):
                domains.add(domain)
    return users, domains


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _clean(value: str) -> str:
    """Something the client said, fit for a header: no controls, no spaces, bounded."""
    return "".join(ch for ch in value if ch.isprintable() and not ch.isspace())[:300]


def _header(authserv_id: str, results: list[authres.BaseAuthenticationResult]) -> str:
    header = authres.AuthenticationResultsHeader(authserv_id=_clean(authserv_id), results=results)
    value = str(header).partition(":")[2].strip()
    return "".join(" " if ch in "\r\n" else ch for ch in value)
