"""What each message template reads of the journey's data, so a send carries only that (issue 18).

A send activity's input is written to the journey's history (and replayed with it) for every message; it used to
carry the trigger, the latest event, every variable and the journey's facts whatever the template used. A
template's reads are found once, when a worker starts (:func:`register_folder`), by parsing every part of every
channel and locale: for each name the journey gives (``trigger``, ``event``, ``vars``, ``journey``) the
attributes it reads, or "all of it" when the template uses the name some other way (loops, dynamic keys).

The workflow asks :func:`reads` (with its task queue) as it builds a send. The answer shapes only the activity's
input, never a command, so a replay that finds a different answer (templates edited since, or a replayer that
registered none) is not a different history. The activity renders with the worker's templates, the same ones
analysed here; an unknown
template, or a step with the ``webhook`` channel (which posts every variable), gets everything, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, TemplateSyntaxError, nodes

from journeymap.expressions import names_read
from journeymap.templates import CHANNEL_PARTS, load_template, template_texts

ROOTS = ("trigger", "event", "vars", "journey")
"""The journey data a send gives its template (the profile and the links the activity adds itself)."""

Reads = dict[str, frozenset[str] | None]
"""Root -> the attributes read (None: all of it). A root the template does not name is absent."""

_REGISTERED: dict[str, dict[str, dict[str, Reads]]] = {}
"""Task queue -> template name -> channel -> what that channel's parts read: a worker registers the templates
it renders under the task queue its journeys run on (one process may run several, with other templates)."""

_ENV = Environment()


def template_reads(texts: list[str]) -> Reads:
    """What the given template sources read of each root, merged."""
    out: Reads = {}
    for text in texts:
        tree = _ENV.parse(text)
        for root in ROOTS:
            if not any(n.name == root for n in tree.find_all(nodes.Name)):
                continue
            read = names_read(tree, root)
            if root in out:
                before = out[root]
                out[root] = None if before is None or read is None else before | read
            else:
                out[root] = read
    return out


def register_folder(folder: Path, task_queue: str) -> int:
    """Analyse every template in ``folder`` for the journeys on ``task_queue``; returns how many. One that does
    not load or parse is left out (its sends carry everything; ``journeys validate`` reports it)."""
    registered = _REGISTERED.setdefault(task_queue, {})
    count = 0
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            template = load_template(path)
            by_channel = {
                channel: template_reads([text for _, text in template_texts(template, [channel])])
                for channel in CHANNEL_PARTS
                if CHANNEL_PARTS[channel]
            }
        except (OSError, ValueError, yaml.YAMLError, TemplateSyntaxError):
            continue
        registered[path.stem] = by_channel
        count += 1
    return count


def reads(task_queue: str, template: str, channels: list[str]) -> Reads | None:
    """What a send of ``template`` over ``channels`` from a journey on ``task_queue`` needs; None: everything
    (a template or task queue not registered, or the ``webhook`` channel)."""
    by_channel = _REGISTERED.get(task_queue, {}).get(template)
    if by_channel is None or any(not CHANNEL_PARTS.get(c) for c in channels):
        return None
    merged: Reads = {}
    for channel in channels:
        for root, read in by_channel.get(channel, {}).items():
            if root in merged:
                before = merged[root]
                merged[root] = None if before is None or read is None else before | read
            else:
                merged[root] = read
    return merged


def only_read(variables: dict[str, Any], needed: Reads | None) -> dict[str, Any]:
    """``variables`` cut down to what ``needed`` names (all of them when None)."""
    if needed is None:
        return variables
    out: dict[str, Any] = {}
    for root, names in needed.items():
        value = variables.get(root)
        if names is None or not isinstance(value, dict):
            out[root] = value
        else:
            out[root] = {k: value[k] for k in sorted(names) if k in value}
    return out
