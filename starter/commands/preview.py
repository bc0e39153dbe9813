"""``journeys preview TEMPLATE --customer ID``: render a template as that customer would get it.

Reads the customer's profile (locale, traits) from the database; ``--var`` supplies the journey variables a
send would carry. A variable the template needs and the preview lacks is named in the error.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from activities.consent import load_profile
from activities.rendering import TemplateRenderer, sms_segments
from contracts.errors import InputError, UsageError
from journeymap.templates import CHANNEL_PARTS, LINK_NAMES
from runtime.settings import Settings
from starter.commands.track import parse_properties
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("preview", help="render a message template for a customer")
    parser.add_argument("template", metavar="TEMPLATE", help="template name (a file in the templates folder)")
    parser.add_argument("--customer", required=True, help="customer id whose profile fills the template")
    parser.add_argument("--channel", choices=[c for c, parts in CHANNEL_PARTS.items() if parts])
    parser.add_argument("--locale", help="render this locale instead of the customer's")
    parser.add_argument(
        "--var", dest="vars", action="append", default=[], metavar="KEY=VALUE", help="a journey variable (repeat)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    renderer = TemplateRenderer(settings.templates_dir)
    variables = parse_properties(args.vars)
    try:
        template = renderer.template(args.template)
    except ApplicationError as exc:  # the renderer's error for a template name with no file
        raise UsageError(str(exc)) from exc
    except ValueError as exc:  # the file is not a template (YAML or shape)
        raise InputError(f"template {args.template!r}: {exc}") from exc
    engine = make_engine(settings.database)
    try:
        with Session(engine) as session:
            profile = load_profile(session, args.customer, default_timezone=settings.delivery.default_timezone)
    finally:
        engine.dispose()
    locale = args.locale or profile.locale
    channels = [args.channel] if args.channel else [c for c in CHANNEL_PARTS if getattr(template, c, None)]
    context: dict[str, Any] = {"profile": profile.traits, "vars": variables, "trigger": {}, "event": {}, "journey": {}}
    # Placeholders, not signed links: a preview printed in a terminal must not hand out a working one.
    context |= {name: f"{settings.link_base_url}/{name.removesuffix('_url')}/PREVIEW" for name in LINK_NAMES}
    failed: list[str] = []
    for channel in channels:
        print(f"== {channel} ({locale or 'default locale'}) for {args.customer}")
        try:
            parts = renderer.render(args.template, channel, context, locale)
        except ApplicationError as exc:
            failed.append(str(exc))  # the other channels are still shown
            continue
        for name, text in parts.items():
            print(f"-- {name}")
            print(text.rstrip())
        if channel == "sms":
            encoding, segments = sms_segments(parts["text"])
            limit = settings.delivery.sms_max_segments
            verdict = "ok" if segments <= limit else f"TOO LONG: at most {limit}, would not be sent"
            print(f"-- {segments} segment(s), {encoding}: {verdict}")
        print()
    if failed:
        raise InputError("\n".join(failed))
    return 0
