"""Signed links to customers: unsubscribe, preference center, and the preference form's anti-forgery token.

A token reads ``<ref>.<scope>.<expires>.<signature>``:

- ``ref`` is the customer's opaque link reference (``activities.links``), never the customer id: a backend's
  user id may be an email address, and a URL travels through mail logs, proxies and browser histories.
- ``scope`` says what the link may do: ``prefs`` (open the preference center), ``unsub-<channel>-<category>``
  (one-click unsubscribe from that category or topic on that channel), ``form`` (the preference form's CSRF
  token, which also carries the link token's signature, so a form token is good for one link only).
- ``expires`` is a Unix time in base 36 (``0``: never); an expired token is refused like a forged one.
- ``signature`` is HMAC-SHA256 over the other three with the first configured key (``JOURNEYS_LINK_KEYS``,
  newest first); every configured key verifies, so a key can be rotated without breaking mail in inboxes.

The signature covers the reference and the scope: a token cannot be moved onto another customer or widened to
another scope. Stdlib ``hmac`` rather than ``itsdangerous``: the format is four fields and a compare, and the
codec keys already follow the same "first signs, all verify" rotation (``runtime.codec``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.errors import AccessDenied, ConfigurationError

MIN_KEY_BYTES = 16
SIGNATURE_CHARS = 32
"""Base64url characters of the HMAC kept in a token (192 bits): short URLs, far beyond guessing."""


class BadLink(AccessDenied):
    """A token that is malformed, forged, for another scope, or expired; the message says which, no more."""


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says."""

    ref: str
    scope: str
    expires_at: datetime | None


class LinkSigner:
    """Signs with the first key, verifies with any. Build once (from settings: :func:`link_signer`)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("JOURNEYS_LINK_KEYS: no key to sign customer links with")
        for index, key in enumerate(keys, start=1):
            if len(key) < MIN_KEY_BYTES:
                raise ConfigurationError(f"JOURNEYS_LINK_KEYS: key {index} is shorter than {MIN_KEY_BYTES} bytes")
        self._keys = keys

    def sign(self, ref: str, scope: str, *, ttl: timedelta | None = None, now: datetime | None = None) -> str:
        if "." in ref or "." in scope or not ref or not scope:
            raise ValueError("a link reference and scope are non-empty and have no dots")
        expires = "0"
        if ttl is not None:
            expires = _base36(int(((now or datetime.now(UTC)) + ttl).timestamp()))
        body = f"{ref}.{scope}.{expires}"
        return f"{body}.{self._mac(self._keys[0], body)}"

    def verify(self, token: str, *, scope: str | None = None, now: datetime | None = None) -> LinkClaims:
        """The claims of a genuine, unexpired token (of ``scope`` when given); raises :class:`BadLink`."""
        parts = token.split(".")
        if len(parts) != 4 or not all(parts):
            raise BadLink("this link is not one of ours or was cut short")
        ref, found_scope, expires, signature = parts
        body = f"{ref}.{found_scope}.{expires}"
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._mac(key, body), signature)
        if not matched:
            raise BadLink("this link is not one of ours or was altered")
        if scope is not None and found_scope != scope:
            raise BadLink("this link is not for this page")
        try:
            stamp = int(expires, 36)
        except ValueError as exc:
            raise BadLink("this link is not one of ours or was altered") from exc
        expires_at = datetime.fromtimestamp(stamp, UTC) if stamp else None
        if expires_at is not None and expires_at <= (now or datetime.now(UTC)):
            raise BadLink("this link has expired")
        return LinkClaims(ref, found_scope, expires_at)

    def form_token(self, link_token: str, *, ttl: timedelta, now: datetime | None = None) -> str:
        """The preference form's anti-forgery token: valid only with ``link_token``, and only for ``ttl``."""
        claims = self.verify(link_token, now=now)
        return self.sign(claims.ref, "form-" + _digest(link_token), ttl=ttl, now=now)

    def check_form_token(self, form_token: str, link_token: str, *, now: datetime | None = None) -> None:
        """Raises :class:`BadLink` unless ``form_token`` was issued for ``link_token`` and is unexpired."""
        claims = self.verify(form_token, scope="form-" + _digest(link_token), now=now)
        if claims.ref != self.verify(link_token, now=now).ref:
            raise BadLink("this form is not for this link")

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:SIGNATURE_CHARS]


def parse_link_keys(setting: str) -> list[bytes]:
    """``JOURNEYS_LINK_KEYS``: comma-separated secrets, newest first (plain text, at least 16 bytes each)."""
    return [part.strip().encode() for part in setting.split(",") if part.strip()]


def link_signer(setting: str, key_file: Path) -> LinkSigner:
    """The signer from ``JOURNEYS_LINK_KEYS``; when that is empty, from ``key_file`` (one key, written with a
    fresh random key the first time, as ``journeys dev`` does for the codec), so a development system's links
    keep working across restarts without a setting."""
    keys = parse_link_keys(setting)
    if not keys:
        if not key_file.is_file():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
            key_file.chmod(0o600)
        keys = parse_link_keys(key_file.read_text(encoding="utf-8").replace("\n", ","))
    return LinkSigner(keys)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"
