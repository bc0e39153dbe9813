"""Search attributes for ops in the Temporal UI. No personal data here: they are stored unencrypted."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CUSTOMER_ID = SearchAttributeKey.for_keyword("JourneyCustomerId")
JOURNEY_NAME = SearchAttributeKey.for_keyword("JourneyName")
STEP = SearchAttributeKey.for_keyword("JourneyStep")
STATUS = SearchAttributeKey.for_keyword("JourneyStatus")
WAIT_UNTIL = SearchAttributeKey.for_datetime("JourneyWaitUntil")

ALL = (CUSTOMER_ID, JOURNEY_NAME, STEP, STATUS, WAIT_UNTIL)
"""Every attribute, to register on a server (``temporal server start-dev --search-attribute``)."""


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for the Temporal CLI's dev server."""
    flags = []
    for key in ALL:
        kind = "Datetime" if key is WAIT_UNTIL else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
