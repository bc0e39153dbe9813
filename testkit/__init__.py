"""Test journeys like code: a journey system on the time-skipping server, in a test or in ``journeys test``.

The public API (documented in docs/testing.md)::

    async with JourneyEnvironment.start(Path("journeys")) as journeys:
        journeys.add_customer("maria", timezone="America/Chicago")
        await journeys.send("maria", "prescription_filled", rx_id="rx-1", ...)
        state = await journeys.wait_for_step("pharmacy_refill", "maria", "await_order", "rx-1")
        assert [d.channel for d in journeys.sends("maria")] == ["push", "email"]

Scenario files are played by :func:`run_scenarios` (what ``journeys test`` runs). ``testkit.harness`` is our
own tests' older harness. The top floor but one: it may import every package below it, and tests/ and bench/
import it (never the reverse).
"""

from journeymap.scenario import Scenario, load_scenario
from starter.scenarios import Planned, ScenarioResult, run_scenarios
from starter.testing import JourneyEnvironment, JourneyNotReached, start_time_skipping_server

__all__ = [
    "JourneyEnvironment",
    "JourneyNotReached",
    "Planned",
    "Scenario",
    "ScenarioResult",
    "load_scenario",
    "run_scenarios",
    "start_time_skipping_server",
]
