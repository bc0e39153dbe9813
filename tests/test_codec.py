"""The AES-GCM payload codec and the codec server the Temporal UI calls."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from runtime.codec import KEY_ID, AESGCMCodec, CodecError, load_codec, new_key_line, parse_keys
from runtime.connection import data_converter
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import make_engine

UI = "http://127.0.0.1:8233"


def codec(*lines: str) -> AESGCMCodec:
    found = load_codec(",".join(lines), None)
    assert found is not None
    return found


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    c = codec(new_key_line("k1"))
    [sealed] = await c.encode([plain('{"email": "ann@example.com"}')])
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"ann@example.com" not in sealed.SerializeToString()
    assert await c.decode([sealed]) == [plain('{"email": "ann@example.com"}')]


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = new_key_line("2025"), new_key_line("2026")
    [before] = await codec(old).encode([plain("before rotation")])
    rotated = codec(new, old)
    [after] = await rotated.encode([plain("after rotation")])
    assert after.metadata[KEY_ID] == b"2026"
    assert [p.data for p in await rotated.decode([before, after])] == [b"before rotation", b"after rotation"]
    # Payloads written before encryption was turned on still read.
    assert await rotated.decode([plain("legacy")]) == [plain("legacy")]


async def test_wrong_or_missing_key_fails_loudly() -> None:
    [sealed] = await codec(new_key_line("k1")).encode([plain("secret")])
    with pytest.raises(CodecError, match="wrong key or tampered"):
        await codec(new_key_line("k1")).decode([sealed])
    with pytest.raises(CodecError, match="'k1', which is not configured"):
        await codec(new_key_line("k2")).decode([sealed])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError):
        await codec(new_key_line("k1")).decode([tampered])


def test_malformed_keys_are_reported_with_where() -> None:
    with pytest.raises(CodecError, match="JOURNEYS_CODEC_KEYS: key 1: write keys as KEY_ID:BASE64_KEY"):
        parse_keys("no-colon", where="JOURNEYS_CODEC_KEYS")
    with pytest.raises(CodecError, match="'short': must be 32 bytes"):
        parse_keys("short:" + base64.b64encode(b"x" * 16).decode(), where="env")
    with pytest.raises(CodecError, match="not valid base64"):
        parse_keys("k:***", where="env")


def test_no_key_means_no_codec_and_a_key_file_turns_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_CODEC_KEY_FILE", raising=False)
    assert data_converter(Settings(data_dir=tmp_path, codec_keys="")).payload_codec is None
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# newest first\n" + new_key_line("b") + "\n" + new_key_line("a") + "\n")
    found = data_converter(Settings(codec_key_file=key_file)).payload_codec
    assert isinstance(found, AESGCMCodec) and found.active_key_id == "b"
    # The CLI beside `journeys dev` finds the key it wrote in the data folder, unless told not to encrypt.
    (tmp_path / "codec.key").write_text(new_key_line("dev-1") + "\n")
    found = data_converter(Settings(data_dir=tmp_path, codec_keys="")).payload_codec
    assert isinstance(found, AESGCMCodec) and found.active_key_id == "dev-1"
    assert data_converter(Settings(data_dir=tmp_path, codec_enabled=False)).payload_codec is None


@pytest_asyncio.fixture
async def codec_server(dev_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_keys="ops-key", codec_keys=new_key_line("k1"), codec_cors_origins=UI)
    engine = make_engine(database_url)
    journeys = JourneyClient(dev_env.client, load_catalog(settings.journeys_dir))
    app = create_app(settings, ApiServices(journeys, engine, data_converter(settings).payload_codec))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http
    engine.dispose()


async def test_codec_server_round_trip_for_the_ui(codec_server: httpx.AsyncClient) -> None:
    # The body is what the Temporal UI sends: protobuf JSON, bytes in base64.
    payload = data_converter(Settings()).payload_converter.to_payloads(
        [JourneyEvent(id="e1", type="t", properties={"phone": "+15550100"})]
    )[0]
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
                "data": base64.b64encode(payload.data).decode(),
            }
        ]
    }
    auth = {"Authorization": "Bearer ops-key", "X-Namespace": "default"}
    encoded = await codec_server.post("/codec/encode", json=body, headers=auth)
    assert encoded.status_code == 200, encoded.text
    sealed = encoded.json()["payloads"][0]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    assert b"15550100" not in base64.b64decode(sealed["data"])

    decoded = await codec_server.post("/codec/decode", json=encoded.json(), headers=auth)
    assert decoded.status_code == 200
    assert decoded.json() == body

    assert (await codec_server.post("/codec/decode", json=encoded.json())).status_code == 401
    garbled = {"payloads": [{**sealed, "data": base64.b64encode(b"x" * 40).decode()}]}
    refused = await codec_server.post("/codec/decode", json=garbled, headers=auth)
    assert refused.status_code == 400
    assert "does not decrypt" in refused.json()["errors"][0]["message"]


async def test_codec_server_allows_only_the_ui_origin(codec_server: httpx.AsyncClient) -> None:
    def preflight(origin: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        }

    allowed = await codec_server.options("/codec/decode", headers=preflight(UI))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    other = await codec_server.options("/codec/decode", headers=preflight("https://evil.example"))
    assert "access-control-allow-origin" not in other.headers
