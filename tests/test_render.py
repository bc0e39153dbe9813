"""``journeys render``: the map as a Mermaid flowchart a marketer can look at.

Edges are read back from the output's edge lines (``A -->|"label"| B``) rather than compared as one big
string, so the layout of labels may change without breaking what the tests guard: every step is drawn, and
the arrows are the ones the interpreter follows. Mermaid's own parser (run in node with jsdom, installed from
``tests/mermaid/package.json``) proves the escaping of labels holds on real expressions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import journeymap.mermaid as mermaid
from journeymap import load_map, load_map_text
from journeymap.mermaid import END_NODE, ENTRY_NODE, NOTE_NODE, node_id, to_mermaid
from starter.catalog import map_files
from starter.cli import main

ROOT = Path(__file__).resolve().parent.parent
PHARMACY = ROOT / "journeys" / "pharmacy_refill.yaml"
MERMAID_DIR = Path(__file__).resolve().parent / "mermaid"

_EDGE = re.compile(r'^\s+(\w+) -->(?:\|"(.*)"\|)? (\w+)$')
_NODE = re.compile(r"^\s+(\w+)[\[\(\{>]")

EVERY_KIND = """
name: every_kind
timezone: Europe/Paris
entry:
  events: [signed_up, order.placed]
  when: 'event.plan != "free" and event.source in ["web", "app"]'
  key: order_id
  reentry: {cooldown: 30d}
variables:
  tier: "profile.tier | default('none')"
  score: "0"
exit_on:
  - account_closed
  - event: unsubscribed
    when: 'event.reason == "a|b" or event.count < 3'
goal:
  events: [purchase]
  within: 14d
  when: "event.total > 100"
steps:
  - id: welcome
    send:
      channels: [email, sms]
      mode: first
      template: welcome
      category: promotional
      on_failure: hook
  - id: pause
    wait: {duration: 2d, at: "09:30"}
  - id: birthday
    wait: {until: profile.birthday, yearly: true, offset: -1d, at: "10:00"}
  - id: morning
    wait: {at: "08:00"}
  - id: listen
    wait_for:
      events: [app_opened, purchase]
      match: 'event.total >= 10 and event["kind"] == "<b>"'
      timeout: 3d
      on_event: decide
      on_timeout: test
  - id: test
    split:
      variants:
        - {name: a, weight: 45, goto: reward}
        - {name: b, weight: 45, goto: profile}
      holdout: {weight: 10}
  - id: decide
    branch:
      - when: 'vars.tier == "gold" and (profile.visits | default(0)) > 3'
        goto: reward
      - when: "vars.score < 0"
        goto: stop
  - id: profile
    update_profile:
      set: {last_journey: journey.name, tags: "['a', 'b']"}
  - id: hook
    webhook:
      url: "https://example.test/hook?a=1&b=[2]"
      method: PUT
      body: {customer: journey.customer_id, note: "'\\"quoted\\" <tag> {x} #1 `code`'"}
  - id: reward
    set:
      score: vars.score + 1
  - id: again
    goto: listen
  - id: stop
    end: {reason: "done | finished"}
"""


def edges(chart: str) -> set[tuple[str, str, str]]:
    """(source, label, target) of every arrow in a rendered chart."""
    found = set()
    for line in chart.splitlines():
        match = _EDGE.match(line)
        if match:
            found.add((match[1], match[2] or "", match[3]))
    return found


def nodes(chart: str) -> set[str]:
    return {m[1] for line in chart.splitlines() if (m := _NODE.match(line))}


def test_pharmacy_map_draws_every_step_and_the_interpreters_edges() -> None:
    chart = to_mermaid(load_map(PHARMACY))

    assert chart.startswith("flowchart TD\n")
    journey = load_map(PHARMACY)
    assert nodes(chart) == {node_id(s.id) for s in journey.steps} | {ENTRY_NODE, END_NODE, NOTE_NODE}
    n = node_id
    assert edges(chart) == {
        (ENTRY_NODE, "", n("wait_for_reminder")),
        (n("wait_for_reminder"), "", n("remind_refill")),
        (n("remind_refill"), "", n("await_order")),
        (n("await_order"), "on refill_ordered", n("await_ready")),
        (n("await_order"), "no event within 10d", END_NODE),
        (n("await_ready"), "on refill_ready", n("note_store")),
        (n("await_ready"), "no event within 7d", END_NODE),
        (n("note_store"), "", n("notify_ready")),
        (n("notify_ready"), "", n("await_pickup")),
        (n("await_pickup"), "on refill_picked_up", n("next_cycle")),
        (n("await_pickup"), "no event within 5d", n("pickup_voicemail")),
        (n("pickup_voicemail"), "", n("await_late_pickup")),
        (n("await_late_pickup"), "on refill_picked_up", n("next_cycle")),
        (n("await_late_pickup"), "no event within 14d", END_NODE),
        (n("next_cycle"), "", n("more_refills")),
        (n("more_refills"), "vars.refills_remaining #gt; 0", n("wait_for_reminder")),
        (n("more_refills"), "otherwise", END_NODE),
    }
    # What each node says: the entry's trigger and key, the timing, the channels, the journey-level rules.
    assert "on prescription_filled" in chart and "one per rx_id" in chart
    assert "wait until vars.supply_ends - 3d<br/>then at 10:00 local time" in chart
    assert "send by push + email<br/>template refill_reminder<br/>transactional" in chart
    assert "exit at once on prescription_cancelled" in chart and "goal: refill_picked_up within 120d" in chart
    assert f"{NOTE_NODE} -.- {ENTRY_NODE}" in chart


def test_every_step_kind_is_drawn_with_its_own_shape_and_edges() -> None:
    chart = to_mermaid(load_map_text(EVERY_KIND, source="every_kind.yaml"))
    n = node_id

    shapes = {m[1]: line.strip() for line in chart.splitlines() if (m := _NODE.match(line))}
    assert shapes[n("welcome")].startswith(f'{n("welcome")}[/"') and shapes[n("welcome")].endswith('"/]')
    assert shapes[n("pause")].startswith(f'{n("pause")}{{{{"')
    assert shapes[n("listen")].startswith(f'{n("listen")}>"')
    assert shapes[n("decide")].startswith(f'{n("decide")}{{"')
    assert shapes[n("test")].startswith(f'{n("test")}[\\"')
    assert shapes[n("profile")].startswith(f'{n("profile")}[("')
    assert shapes[n("hook")].startswith(f'{n("hook")}[["')
    assert shapes[n("stop")].startswith(f'{n("stop")}("')
    # goto is an arrow, not a box: the step that leads to it points straight at the goto's target.
    assert n("again") not in shapes

    decide_first = "vars.tier == #quot;gold#quot; and (profile.visits #124; default(0)) #gt; 3"
    assert edges(chart) == {
        (ENTRY_NODE, "", n("welcome")),
        (n("welcome"), "", n("pause")),
        (n("welcome"), "nothing delivered", n("hook")),
        (n("pause"), "", n("birthday")),
        (n("birthday"), "", n("morning")),
        (n("morning"), "", n("listen")),
        (n("listen"), "on app_opened or purchase", n("decide")),
        (n("listen"), "no event within 3d", n("test")),
        (n("test"), "a", n("reward")),
        (n("test"), "b", n("profile")),
        (n("test"), "holdout", END_NODE),
        (n("decide"), decide_first, n("reward")),
        (n("decide"), "vars.score #lt; 0", n("stop")),
        (n("decide"), "otherwise", n("profile")),
        (n("profile"), "", n("hook")),
        (n("hook"), "", n("reward")),
        (n("reward"), "goto again", n("listen")),
        (n("stop"), "", END_NODE),
    }
    for text in (
        "send by email, then sms (first that works)",
        "template welcome<br/>promotional",
        "wait 2d<br/>then at 09:30 local time",
        "wait until the next anniversary of profile.birthday - 1d<br/>then at 10:00 local time",
        "wait<br/>then at 08:00 local time",
        "wait for app_opened or purchase",
        "timeout 3d",
        "a: weight 45 (45%)<br/>b: weight 45 (45%)<br/>holdout: weight 10 (10%)",
        "vars.score = vars.score + 1",
        "profile.last_journey = journey.name",
        "webhook PUT https://example.test/hook?a=1#amp;b=#91;2#93;",
        "end: done #124; finished",
        "not within 30d of the last end",
        "goal: purchase within 14d when event.total #gt; 100",
    ):
        assert text in chart, text


def test_labels_carry_no_character_that_mermaid_would_read_as_syntax() -> None:
    chart = to_mermaid(load_map_text(EVERY_KIND, source="every_kind.yaml"))

    labels = re.findall(r'"(.*?)"(?:[\]\)\}/\\|]|:::)', chart)
    assert len(labels) > 20
    for label in labels:
        bare = label.replace("<br/>", "")
        assert not set(bare) & set('"<>|[]{}`'), label
    assert "#quot;quoted#quot; #lt;tag#gt; #123;x#125; #35;1 #96;code#96;" in chart


def _mermaid_parse(tmp_path: Path, charts: dict[str, str]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        message = "Mermaid's parser is not installed: run `npm ci --prefix tests/mermaid` (scripts/install does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs everything: a missing parser there is a broken install step
        pytest.skip(message)
    files = []
    for name, chart in charts.items():
        file = tmp_path / f"{name}.mmd"
        file.write_text(chart, encoding="utf-8")
        files.append(str(file))
    return subprocess.run(
        [node, str(MERMAID_DIR / "parse.mjs"), *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


KEYWORD_IDS = """
name: keywords
entry: {events: [go]}
steps:
  - {id: graph, wait: {duration: 1d}}
  - {id: subgraph, wait: {duration: 1d}}
  - {id: end_now, wait: {duration: 1d}}
  - {id: style, wait: {duration: 1d}}
  - {id: class, wait: {duration: 1d}}
  - {id: click, wait: {duration: 1d}}
  - {id: default, wait: {duration: 1d}}
  - {id: o, wait: {duration: 1d}}
  - {id: x, end: {}}
"""


def test_mermaids_own_parser_accepts_every_rendered_map(tmp_path: Path) -> None:
    charts = {
        "every_kind": to_mermaid(load_map_text(EVERY_KIND, source="every_kind.yaml")),
        "keywords": to_mermaid(load_map_text(KEYWORD_IDS, source="keywords.yaml")),
    }
    for shipped in map_files(ROOT / "journeys"):
        charts[shipped.stem] = to_mermaid(load_map(shipped))

    result = _mermaid_parse(tmp_path, charts)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" flowchart") == len(charts) > 3


def test_mermaids_parser_rejects_the_same_map_unescaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: without escaping, the expressions in the map break the chart, so the test above means it."""
    monkeypatch.setattr(mermaid, "_ESCAPES", ())
    chart = to_mermaid(load_map_text(EVERY_KIND, source="every_kind.yaml"))

    result = _mermaid_parse(tmp_path, {"unescaped": chart})

    assert result.returncode == 1
    assert "error" in result.stdout


def test_render_command_prints_the_chart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(PHARMACY)]) == 0

    out, err = capsys.readouterr()
    assert out.startswith("flowchart TD\n") and out.endswith("\n") and not out.endswith("\n\n")
    assert (node_id("await_pickup"), "no event within 5d", node_id("pickup_voicemail")) in edges(out)
    assert err == ""


def test_render_command_refuses_an_invalid_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nentry: {events: [go]}\nsteps:\n  - {id: a, goto: nowhere}\n", encoding="utf-8")

    assert main(["render", str(bad)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err == "bad.yaml: steps[0].goto: unknown step 'nowhere'\n"


def test_a_goto_first_step_is_the_entry_arrow() -> None:
    text = (
        "name: jump\nentry: {events: [go]}\n"
        "steps:\n  - {id: skip, goto: later}\n  - {id: later, wait: {duration: 1d}}\n"
    )
    chart = to_mermaid(load_map_text(text, source="jump.yaml"))

    assert edges(chart) == {(ENTRY_NODE, "goto skip", node_id("later")), (node_id("later"), "", END_NODE)}
    assert node_id("skip") not in nodes(chart)
