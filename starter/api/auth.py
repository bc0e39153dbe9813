"""API keys: who may use the event API.

Every path under ``/v1/`` needs a key, checked by one ASGI middleware (``starter.api.middleware.RequireApiKey``)
before anything else reads the request, not by a FastAPI dependency on each route:

- a route added under ``/v1/`` is protected without anyone having to remember it;
- an unauthenticated client gets 401 before its body is read or validated, so it learns nothing from a 422;
- it costs a header look-up, where FastAPI's dependency resolution cost ~25 us of CPU a request, about 3% of
  all the API spends on a ``/v1/track`` (docs/benchmarks.md).

The OpenAPI document says the same (:func:`document_api_keys`), so clients and schemathesis see the schemes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from fastapi import FastAPI

from contracts.errors import ConfigurationError

PROTECTED_PREFIX = "/v1/"
"""Every path under this one needs an API key."""

REFUSED = "missing or unknown API key"
"""The 401's message, wherever a key is checked."""

SCHEMES = {
    "HTTPBasic": {"type": "http", "scheme": "basic", "description": "the API key as user name, no password"},
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
}
"""The two ways to present a key, as OpenAPI security schemes (Segment's libraries send HTTP Basic)."""


class ApiKeys:
    """The configured keys, and the check of an ``Authorization`` header against them."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigurationError("JOURNEYS_API_KEYS is empty: set at least one API key for the event API")
        self._keys = [key.encode() for key in keys]

    @classmethod
    def parse(cls, setting: str) -> ApiKeys:
        """From the comma-separated ``JOURNEYS_API_KEYS`` setting."""
        return cls([key.strip() for key in setting.split(",") if key.strip()])

    def allow(self, authorization: str | None) -> bool:
        """True when the header presents one of the keys, as Basic (key as user name) or Bearer."""
        presented = _presented(authorization or "")
        if not presented:
            return False
        given = presented.encode()
        # Compare against every key, without stopping early, so timing does not tell which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched


def _presented(authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0]
    return None


def document_api_keys(app: FastAPI) -> None:
    """Publish in ``app``'s OpenAPI document what ``RequireApiKey`` enforces: the two schemes, required by every
    operation under :data:`PROTECTED_PREFIX`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SCHEMES)
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(PROTECTED_PREFIX):
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
