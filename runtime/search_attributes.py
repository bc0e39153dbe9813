"""Register the journeys' search attributes on a cluster (``journeys setup``, the dev server, tests)."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from contracts.search_attributes import ALL


async def register_search_attributes(client: Client, *, check_existing: bool = True) -> list[str]:
    """Add the attributes the namespace lacks; return the names added (none when all are there).

    ``check_existing=False`` skips listing them first, for the time-skipping test server, which cannot list.
    """
    known: set[str] = set()
    if check_existing:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        key.name: IndexedValueType.ValueType(_indexed(key.indexed_value_type)) for key in ALL if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def _indexed(kind: SearchAttributeIndexedValueType) -> int:
    return int(kind.value)
