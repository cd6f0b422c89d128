"""Settings read from the environment once per container."""

import os
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Service settings. Each field comes from the upper-case environment variable."""

    model_config = ConfigDict(frozen=True)

    table_name: str = "reinstall-sms"
    idempotency_table_name: str = "reinstall-sms-idempotency"
    hq_base_url: str = "https://www.commcarehq.org"
    max_users_per_request: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    sns_max_attempts: int = Field(default=5, ge=1)
    sms_send_concurrency: int = Field(default=16, ge=1)
    # Messages per second for one invocation; 0 turns the limit off.
    sms_max_send_rate: float = Field(default=20, ge=0)
    deadline_margin_ms: int = Field(default=3000, ge=0)
    sms_log_retention_days: int = Field(default=90, ge=1)
    idempotency_ttl_seconds: int = Field(default=86400, ge=1)
    # SQS queue for queued delivery; empty means every request is sent directly.
    queue_url: str = ""
    # Numbers per queue message. 200 keeps a message, texts included, far below
    # SQS's 256 KiB limit.
    queue_chunk_size: int = Field(default=50, ge=1, le=200)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """Build settings from variables such as ``TABLE_NAME``; unset ones keep defaults.

        Raises pydantic.ValidationError naming the variable when a value is invalid.
        """
        values = {
            name: environ[name.upper()]
            for name in cls.model_fields
            if environ.get(name.upper(), "") != ""
        }
        return cls.model_validate(values)


@cache
def get_settings() -> Settings:
    """Return the settings, parsed from ``os.environ`` on first use."""
    return Settings.from_environ(os.environ)
