"""``journeys customers export|forget CUSTOMER``: a customer's data-subject requests (``starter.privacy``).

``export`` prints everything held about the customer as one JSON document (profile, identities, consents,
events, messages sent, journeys); ``forget`` ends their journeys (terminated), removes their profile,
identities and link reference, and redacts message contents in the ledger while the fact and time of each send
remain, so nothing is ever sent twice. Both need Temporal and the database, as the API's endpoints do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from runtime.connection import connect
from runtime.settings import Settings
from starter import privacy
from starter.catalog import load_catalog
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("customers", help="export or forget a customer's data (data-subject requests)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="everything held about CUSTOMER, as JSON")
    export.add_argument("customer_id", metavar="CUSTOMER")
    export.add_argument("--output", "-o", help="write to this file instead of standard output")
    forget = actions.add_parser("forget", help="end CUSTOMER's journeys and erase their data")
    forget.add_argument("customer_id", metavar="CUSTOMER")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(_run(args))
    text = json.dumps(result, indent=2, default=str)
    if args.action == "export" and args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"customer {args.customer_id}: exported to {args.output}")
    else:
        print(text)
    return 0


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    catalog = load_catalog(settings.journeys_dir)
    client = await connect(settings)
    engine = make_engine(settings.database)
    try:
        if args.action == "export":
            return await privacy.export(client, engine, catalog, args.customer_id)
        return await privacy.forget(client, engine, catalog, args.customer_id)
    finally:
        engine.dispose()
