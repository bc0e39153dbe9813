"""docker-compose.yml, checked statically (no Docker engine here): what `docker compose up` would trip over."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.settings import DeliverySettings, Settings
from starter.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"postgresql", "temporal", "temporal-ui", "setup", "worker", "api", "mailpit"}
OURS = {"setup", "worker", "api"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port."""
    ports = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        ports[int(host)] = int(container)
    return ports


def test_every_part_of_the_system_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image!r} is not pinned to a version"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base and re.search(r":\d", base.group(1)), "Dockerfile: base image not pinned"


def test_ports_are_distinct_numbers(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for host in published(service):
            assert host not in seen, f"{name}: host port {host} is also published by {seen[host]}"
            seen[host] = name


def test_depends_on_is_consistent_with_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name}: depends on unknown service {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name}: waits for {target} healthy, it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{name}: {target} must be a one-shot job"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_our_services_run_real_commands_with_settings_the_code_reads(services: dict[str, dict[str, Any]]) -> None:
    known = set(Settings.model_fields) | set(DeliverySettings.model_fields)
    for name in OURS:
        service = services[name]
        command = service["command"]
        assert command[0] == "journeys" and command[1] in COMMANDS, f"{name}: {command} is not a journeys command"
        for variable in env(service):
            assert variable.startswith("JOURNEYS_"), f"{name}: {variable} is read by nothing"
            field = variable.removeprefix("JOURNEYS_").lower()
            assert field in known, f"{name}: {variable} matches no field of runtime/settings.py"
        variables = env(service)
        host, _, port = variables["JOURNEYS_TEMPORAL_ADDRESS"].partition(":")
        assert host in services and int(port) in published(services[host]).values()
        assert variables["JOURNEYS_DATABASE_URL"].split("@")[1].startswith("postgresql:5432/")


def test_ui_decrypts_through_the_api_and_the_api_allows_the_ui(services: dict[str, dict[str, Any]]) -> None:
    ui, api = env(services["temporal-ui"]), env(services["api"])
    api_port = int(api["JOURNEYS_API_PORT"])
    api_host_port = next(h for h, c in published(services["api"]).items() if c == api_port)
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{api_host_port}/codec"
    ui_port = next(iter(published(services["temporal-ui"])))
    assert f"http://localhost:{ui_port}" in api["JOURNEYS_CODEC_CORS_ORIGINS"].split(",")
    assert api["JOURNEYS_API_HOST"] == "0.0.0.0"  # reachable from outside its container


def test_worker_metrics_port_is_published_and_shutdown_fits_the_grace_period(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    variables = env(worker)
    assert int(variables["JOURNEYS_METRICS_PORT"]) in published(worker).values()
    grace = int(str(worker["stop_grace_period"]).removesuffix("s"))
    assert float(variables["JOURNEYS_WORKER_SHUTDOWN_SECONDS"]) < grace
    assert env(services["worker"])["JOURNEYS_SMTP_HOST"] == "mailpit"
    assert int(env(services["worker"])["JOURNEYS_SMTP_PORT"]) in published(services["mailpit"]).values()


def dockerfile_copies_before_install() -> list[tuple[list[str], str]]:
    """The Dockerfile's ``COPY sources... dest`` instructions that come before its ``pip install``."""
    instructions = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).splitlines()
    copies: list[tuple[list[str], str]] = []
    for line in instructions:
        words = line.split()
        if words[:1] == ["RUN"] and "pip install" in line:
            return copies
        if words[:1] == ["COPY"]:
            assert not any(w.startswith("--") for w in words), f"Dockerfile: the test does not model {line!r}"
            copies.append((words[1:-1], words[-1]))
    raise AssertionError("Dockerfile: no `RUN pip install`")


def copy_like_docker(sources: list[str], dest: str, into: Path) -> None:
    target = into / dest
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"Dockerfile: COPY {source}: no such file in the build context"
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def top_level_packages() -> set[str]:
    """What pyproject.toml installs, as a ``packages`` list or ``packages.find`` include patterns."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    names = packages if isinstance(packages, list) else packages["find"]["include"]
    return {name.removesuffix("*").split(".")[0] for name in names}


def test_the_image_installs_every_module_of_the_checkout(tmp_path: Path) -> None:
    """`docker compose up --build` (no Docker here): what the Dockerfile copies before ``pip install .`` must build
    the whole project: every package pyproject.toml names, with its subpackages."""
    context = tmp_path / "app"
    for sources, dest in dockerfile_copies_before_install():
        copy_like_docker(sources, dest, context)
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path / "wheels")]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, str(context)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    installed = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    checkout = {
        path.relative_to(ROOT).as_posix() for package in top_level_packages() for path in (ROOT / package).rglob("*.py")
    }
    assert checkout - installed == set(), "modules of the checkout the image would not install"
    pages = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("starter/api/pages/")}
    shipped = {path.relative_to(ROOT).as_posix() for path in (ROOT / "starter" / "api" / "pages").glob("*.html")}
    assert shipped and pages == shipped, "the preference center's pages travel with the package"
