"""Signed customer links: what a customer's unsubscribe and preference links may and may not do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.links import CustomerLinks, parse_unsubscribe_scope, unsubscribe_scope
from contracts.errors import ConfigurationError
from runtime.links import BadLink, LinkSigner, link_signer, parse_link_keys

OLD = b"old-key-0123456789abcdef"
NEW = b"new-key-0123456789abcdef"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_a_signed_token_verifies_and_names_its_reference_and_scope() -> None:
    signer = LinkSigner([NEW])
    token = signer.sign("ref-a", "prefs", ttl=timedelta(days=30), now=NOW)
    claims = signer.verify(token, scope="prefs", now=NOW)
    assert (claims.ref, claims.scope) == ("ref-a", "prefs")
    assert claims.expires_at == NOW + timedelta(days=30)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda t: t.replace("ref-a", "ref-b", 1), "altered"),  # replayed onto another customer
        (lambda t: t.replace("unsub-email-promotional", "unsub-email-transactional"), "altered"),  # widened
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "altered"),  # forged signature
        (lambda t: t.rsplit(".", 1)[0], "cut short"),
        (lambda t: "", "cut short"),
    ],
)
def test_a_changed_token_is_refused(tamper: object, message: str) -> None:
    signer = LinkSigner([NEW])
    token = signer.sign("ref-a", "unsub-email-promotional", ttl=timedelta(days=1), now=NOW)
    with pytest.raises(BadLink, match=message):
        signer.verify(tamper(token), now=NOW)  # type: ignore[operator]


def test_a_token_for_one_page_does_not_open_another() -> None:
    signer = LinkSigner([NEW])
    token = signer.sign("ref-a", "unsub-email-promotional", now=NOW)
    with pytest.raises(BadLink, match="not for this page"):
        signer.verify(token, scope="prefs", now=NOW)


def test_an_expired_token_is_refused_and_one_without_expiry_is_not() -> None:
    signer = LinkSigner([NEW])
    token = signer.sign("ref-a", "prefs", ttl=timedelta(hours=1), now=NOW)
    signer.verify(token, now=NOW + timedelta(minutes=59))
    with pytest.raises(BadLink, match="expired"):
        signer.verify(token, now=NOW + timedelta(hours=1))
    forever = signer.sign("ref-a", "prefs", now=NOW)
    assert signer.verify(forever, now=NOW + timedelta(days=10_000)).expires_at is None


def test_keys_rotate_the_new_one_signs_and_the_old_one_still_verifies() -> None:
    before = LinkSigner([OLD])
    in_old_mail = before.sign("ref-a", "prefs", now=NOW)
    after = LinkSigner([NEW, OLD])
    assert after.verify(in_old_mail, now=NOW).ref == "ref-a"
    fresh = after.sign("ref-a", "prefs", now=NOW)
    assert LinkSigner([NEW]).verify(fresh, now=NOW).ref == "ref-a", "the first key signs"
    with pytest.raises(BadLink):
        LinkSigner([NEW]).verify(in_old_mail, now=NOW)  # once the old key is retired, its links end


def test_a_form_token_works_only_with_the_link_it_was_issued_for() -> None:
    signer = LinkSigner([NEW])
    mine = signer.sign("ref-a", "prefs", now=NOW)
    theirs = signer.sign("ref-b", "prefs", now=NOW)
    form = signer.form_token(mine, ttl=timedelta(hours=1), now=NOW)
    signer.check_form_token(form, mine, now=NOW)
    with pytest.raises(BadLink):
        signer.check_form_token(form, theirs, now=NOW)
    with pytest.raises(BadLink, match="expired"):
        signer.check_form_token(form, mine, now=NOW + timedelta(hours=2))
    with pytest.raises(BadLink):
        signer.check_form_token("", mine, now=NOW)


def test_urls_carry_the_reference_not_the_customer() -> None:
    links = CustomerLinks(LinkSigner([NEW]), "https://prefs.example", timedelta(days=400), mailto="unsub@example.com")
    url = links.unsubscribe_url("Zx9-opaque", "email", "offers", now=NOW)
    assert url.startswith("https://prefs.example/unsubscribe/Zx9-opaque.unsub-email-offers.")
    mailto = links.unsubscribe_mailto("Zx9-opaque", "email", "offers", now=NOW)
    assert mailto is not None and mailto.startswith("mailto:unsub@example.com?subject=unsubscribe%20Zx9-opaque.")
    assert parse_unsubscribe_scope(unsubscribe_scope("sms", "refill_reminders")) == ("sms", "refill_reminders")
    assert parse_unsubscribe_scope("prefs") is None


def test_keys_come_from_the_setting_or_a_key_file_made_once(tmp_path: Path) -> None:
    assert parse_link_keys(" a-very-long-secret-1 , b-very-long-secret-2 ") == [
        b"a-very-long-secret-1",
        b"b-very-long-secret-2",
    ]
    with pytest.raises(ConfigurationError, match="key 1 is shorter"):
        link_signer("short", tmp_path / "unused.key")
    key_file = tmp_path / "links.key"
    token = link_signer("", key_file).sign("ref-a", "prefs")
    assert key_file.stat().st_mode & 0o077 == 0, "the key file is the owner's alone"
    assert link_signer("", key_file).verify(token).ref == "ref-a", "a restart reads the same key"
