"""Configuration from the environment (``JOURNEYS_*``), with embedded defaults that need no account."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "journeys"
    data_dir: Path = ROOT / "data"
    database_url: str | None = None
    """Defaults to a SQLite file in ``data_dir``."""
    journeys_dir: Path = ROOT / "journeys"
    """Where the journey maps live; templates are in its ``templates/`` folder."""

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'journeys.db'}"

    @property
    def templates_dir(self) -> Path:
        return self.journeys_dir / "templates"
