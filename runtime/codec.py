"""AES-GCM payload codec: workflow histories hold ciphertext, never a customer's email, phone or prescription.

Each encrypted payload names the key that sealed it (``encryption-key-id`` in its metadata), so keys rotate
without re-encrypting history: the newest key encrypts, every configured key decrypts. A payload sealed by a
key we no longer hold, or tampered with, fails loudly with :class:`CodecError` instead of reaching a workflow
as garbage.

Keys are configured as ``key-id:base64-key`` (256-bit keys), in ``JOURNEYS_CODEC_KEYS`` or a key file.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from contracts.errors import ConfigurationError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(ConfigurationError, ValueError):
    """A payload cannot be decrypted (unknown key id, wrong key, tampered data) or a key is malformed."""


@dataclass(frozen=True)
class CodecKey:
    id: str
    secret: bytes


def parse_keys(text: str, *, where: str) -> list[CodecKey]:
    """``id:base64`` entries separated by commas or lines; ``where`` names the source in errors."""
    keys: list[CodecKey] = []
    entries = [e.strip() for line in text.splitlines() for e in line.split(",")]
    for number, entry in enumerate((e for e in entries if e and not e.startswith("#")), start=1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id:
            raise CodecError(f"{where}: key {number}: write keys as KEY_ID:BASE64_KEY")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CodecError(f"{where}: key {key_id!r}: not valid base64") from exc
        if len(secret) != 32:
            raise CodecError(f"{where}: key {key_id!r}: must be 32 bytes (AES-256), got {len(secret)}")
        keys.append(CodecKey(key_id, secret))
    return keys


def new_key_line(key_id: str) -> str:
    """A fresh random key in the configuration format (``journeys dev`` writes one to its data folder)."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class AESGCMCodec(PayloadCodec):
    """Encrypts with the first key; decrypts with whichever key the payload names."""

    def __init__(self, keys: Sequence[CodecKey]) -> None:
        if not keys:
            raise CodecError("the codec needs at least one key")
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise CodecError(f"codec key ids must be unique, got {ids}")
        self._active = keys[0]
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}

    @property
    def active_key_id(self) -> str:
        return self._active.id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        # The key id is bound as associated data: moving ciphertext under another key id fails to decrypt.
        sealed = self._ciphers[self._active.id].encrypt(nonce, payload.SerializeToString(), self._active.id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self._active.id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(
                f"payload was encrypted with key {key_id!r}, which is not configured "
                f"(configured: {sorted(self._ciphers)})"
            )
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag as exc:
            raise CodecError(f"payload under key {key_id!r} does not decrypt: wrong key or tampered") from exc
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def load_codec(codec_keys: str, key_file: Path | None) -> AESGCMCodec | None:
    """The codec for the configured keys, or ``None`` when no key is configured (payloads stay plain)."""
    keys = parse_keys(codec_keys, where="JOURNEYS_CODEC_KEYS")
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise CodecError(f"JOURNEYS_CODEC_KEY_FILE: cannot read {key_file}: {exc.strerror}") from exc
        keys += parse_keys(text, where=str(key_file))
    return AESGCMCodec(keys) if keys else None
