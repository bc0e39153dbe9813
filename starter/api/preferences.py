"""The customer's pages: one-click unsubscribe (RFC 8058) and the preference center, reached by signed links.

- ``POST /unsubscribe/{token}``: unsubscribes at once, no login, no confirmation: what a mailbox provider's
  "Unsubscribe" button sends (``List-Unsubscribe=One-Click``). The page's own button posts here too.
- ``GET /unsubscribe/{token}``: a page that asks to confirm and offers the preference center. A GET never
  changes anything: mail scanners follow links.
- ``GET /preferences/{token}``: every channel by category and topic, a pause of promotions; a plain HTML form
  (no JavaScript), labelled, grouped in fieldsets, usable by keyboard.
- ``POST /preferences/{token}``: saves the boxes that changed, then redirects to the page (``?saved=1``). The
  form carries an anti-forgery token tied to the link's token and valid for an hour.

A bad, altered or expired link, or one whose customer was erased, gets a page that says so (400), never a
stack trace, and changes nothing. Pages are jinja2 templates (``starter/api/pages``); a brand overrides any of
them with a file of the same name in ``JOURNEYS_PREFERENCES_TEMPLATES_DIR``. Every answer is ``no-store``,
``no-referrer`` (the token is in the URL) and refuses to be framed.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine

from activities.consent import set_consent
from activities.links import PREFERENCES_SCOPE, CustomerLinks, customer_of, parse_unsubscribe_scope
from activities.preferences import Choice, apply_choices, choices, pause_in_force
from journeymap.preferences import PreferenceCatalog
from runtime.links import BadLink, LinkSigner
from starter.api.services import get_services
from starter.consent_segments import consent_changed

PAGES = Path(__file__).resolve().parent / "pages"
FORM_TTL = timedelta(hours=1)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}
CHANNEL_LABELS = {"email": "Email", "sms": "Text messages (SMS)", "push": "App notifications", "voice": "Phone calls"}
CATEGORY_LABELS = {
    "transactional": ("Service messages", "About your orders, prescriptions and account."),
    "promotional": ("Promotions", "Offers, news and ideas from us."),
}


@dataclass(frozen=True)
class PreferencePages:
    """What the pages need, built once by the app."""

    catalog: PreferenceCatalog
    links: CustomerLinks
    promotional_requires_opt_in: bool
    templates_dir: Path | None = None

    def environment(self) -> Environment:
        loaders = [FileSystemLoader(str(self.templates_dir))] if self.templates_dir else []
        return Environment(
            loader=ChoiceLoader([*loaders, FileSystemLoader(str(PAGES))]),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )


def preferences_router(pages: PreferencePages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    env = pages.environment()
    signer: LinkSigner = pages.links.signer

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(name).render(brand=pages.catalog.brand, **context)
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def bad(error: BadLink) -> HTMLResponse:
        return render("bad_link.html", 400, message=str(error))

    async def customer(engine: Engine, token: str, scope: str | None) -> tuple[str, str]:
        """``(customer id, link reference)`` of a genuine token; raises :class:`BadLink`."""
        claims = signer.verify(token, scope=scope)
        if scope is None and parse_unsubscribe_scope(claims.scope) is None:
            raise BadLink("this link is not for this page")
        found = await asyncio.to_thread(customer_of, engine, claims.ref)
        if found is None:
            raise BadLink("this link no longer works: the account it was for is gone")
        return found, claims.ref

    async def unsubscribe_page(request: Request, token: str, *, done: bool) -> HTMLResponse:
        engine = get_services(request).engine
        try:
            customer_id, ref = await customer(engine, token, None)
        except BadLink as error:
            return bad(error)
        scope = parse_unsubscribe_scope(signer.verify(token).scope)
        assert scope is not None
        channel, category = scope
        if done:
            source = "unsubscribe_link"
            await asyncio.to_thread(
                set_consent, engine, customer_id, channel=channel, category=category, granted=False, source=source
            )
            services = get_services(request)
            await consent_changed(engine, services.audiences, services.journeys, [customer_id])
        return render(
            "unsubscribed.html" if done else "unsubscribe.html",
            channel=CHANNEL_LABELS.get(channel, channel),
            what=_scope_label(pages.catalog, category),
            preferences_url=pages.links.preferences_url(ref),
        )

    @router.get("/unsubscribe/{token}")
    async def unsubscribe_confirm(request: Request, token: str) -> HTMLResponse:
        return await unsubscribe_page(request, token, done=False)

    @router.post("/unsubscribe/{token}")
    async def unsubscribe(request: Request, token: str) -> HTMLResponse:
        """RFC 8058 one-click: the body is ``List-Unsubscribe=One-Click`` (or the page's button); either way
        the link's token is the whole authority, so no login and no second step."""
        return await unsubscribe_page(request, token, done=True)

    async def center(request: Request, token: str, *, saved: bool, status: int = 200) -> HTMLResponse:
        engine = get_services(request).engine
        try:
            customer_id, _ = await customer(engine, token, PREFERENCES_SCOPE)
        except BadLink as error:
            return bad(error)
        boxes = await asyncio.to_thread(
            choices, engine, customer_id, pages.catalog, promotional_requires_opt_in=pages.promotional_requires_opt_in
        )
        pause = await asyncio.to_thread(pause_in_force, engine, customer_id)
        return render(
            "preferences.html",
            status,
            groups=_groups(pages.catalog, boxes),
            channels=[(c, CHANNEL_LABELS.get(c, c)) for c in pages.catalog.channels],
            pause=pause,
            pause_days=pages.catalog.pause_days,
            csrf=signer.form_token(token, ttl=FORM_TTL),
            saved=saved,
        )

    @router.get("/preferences/{token}")
    async def preferences(request: Request, token: str, saved: int = 0) -> HTMLResponse:
        return await center(request, token, saved=bool(saved))

    @router.post("/preferences/{token}", response_model=None)
    async def save_preferences(request: Request, token: str) -> Response:
        engine = get_services(request).engine
        form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
        try:
            customer_id, _ = await customer(engine, token, PREFERENCES_SCOPE)
            signer.check_form_token(form.get("csrf", ""), token)
        except BadLink as error:
            return bad(error)
        now = datetime.now(UTC)
        current = await asyncio.to_thread(
            choices,
            engine,
            customer_id,
            pages.catalog,
            promotional_requires_opt_in=pages.promotional_requires_opt_in,
            now=now,
        )
        wanted = {(c.channel, c.scope): f"{c.channel}.{c.scope}" in form for c in current}
        pause = form.get("pause", "")
        days = int(pause) if pause.isdigit() and int(pause) in pages.catalog.pause_days else None
        await asyncio.to_thread(
            apply_choices,
            engine,
            customer_id,
            wanted,
            current,
            source="preference_center",
            pause_days=days,
            resume="resume" in form,
            now=now,
        )
        services = get_services(request)
        await consent_changed(engine, services.audiences, services.journeys, [customer_id])
        # Post/redirect/get: a reload does not post the form again.
        return RedirectResponse(f"{request.url.path}?saved=1", status_code=303, headers=HEADERS)

    return router


def _scope_label(catalog: PreferenceCatalog, scope: str) -> str:
    topic = catalog.topics.get(scope)
    if topic is not None:
        return topic.label
    return CATEGORY_LABELS.get(scope, (scope, ""))[0]


def _groups(catalog: PreferenceCatalog, boxes: list[Choice]) -> list[dict[str, Any]]:
    """One fieldset per category and per topic, each with a box per channel, in the catalog's order."""
    groups: list[dict[str, Any]] = []
    for scope in [*CATEGORY_LABELS, *catalog.topics]:
        topic = catalog.topics.get(scope)
        label, description = (topic.label, topic.description) if topic else CATEGORY_LABELS[scope]
        groups.append(
            {
                "scope": scope,
                "label": label,
                "description": description,
                "boxes": [b for b in boxes if b.scope == scope],
            }
        )
    return groups
