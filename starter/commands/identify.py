"""``journeys identify USER_ID [trait=value ...]``: link identities and set traits, as a backend's identify would.

It writes to the journeys database directly (as ``journeys track`` talks to Temporal directly), so it works
without the event API running. Only identity kinds are printed, never their values: terminals get logged.
"""

from __future__ import annotations

import argparse
from typing import Any

from activities.preferences import CONSENT_TRAIT, consent_from_traits, record_words
from contracts.errors import UsageError
from runtime.settings import Settings
from starter.api.identities import identities_of, resolve_customer
from starter.commands.track import parse_properties
from starter.consent_segments import recheck_from_cli
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("identify", help="link a customer's identities and update their traits")
    parser.add_argument("user_id", nargs="?", default=None, help="the backend's user id")
    parser.add_argument(
        "traits", nargs="*", metavar="KEY=VALUE", help="traits (email, phone, device_token link too); JSON values"
    )
    parser.add_argument("--anonymous-id", default=None, help="the visitor's anonymous id, to link to the user")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.user_id is None and args.anonymous_id is None:
        raise UsageError("give a USER_ID or --anonymous-id")
    traits = parse_properties(args.traits)
    try:
        # ``consent={"email": {"promotional": false}}`` becomes consent rows, as the event API's identify does.
        words = consent_from_traits(traits.pop(CONSENT_TRAIT)) if CONSENT_TRAIT in traits else []
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    settings = Settings()
    engine = make_engine(settings.database)
    try:
        customer_id = resolve_customer(engine, user_id=args.user_id, anonymous_id=args.anonymous_id, traits=traits)
        note = None
        if words:
            record_words(engine, customer_id, words, source="cli")
            note = recheck_from_cli(settings, engine, [customer_id])
        kinds = sorted({kind for kind, _ in identities_of(engine, customer_id)})
    finally:
        engine.dispose()
    print(f"customer {customer_id}: linked {', '.join(kinds)}")
    if note is not None:
        print(f"customer {customer_id}: {note}")
    return 0
