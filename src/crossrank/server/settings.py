"""`ServerSettings`: the one definition of every setting of `crossrank serve` itself.

The engine's settings (model, backend, batch size, token budget per forward pass, ...) are
`crossrank.config.EngineSettings`; these are the server's: where it listens, who may call it,
and the limits it enforces. Flags and `CROSSRANK_*` environment variables are derived from
both models by the CLI, so nothing here is written out again elsewhere.

The limits use text-embeddings-inference's names where TEI has the same limit
(`max_client_batch_size`, `max_concurrent_requests`); TEI's `max_batch_tokens` (padded tokens
per forward pass) is the engine's `token_budget`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServerSettings(BaseModel):
    """Settings of the rerank server (see docs/serving.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; 127.0.0.1 (this machine only) unless told otherwise.",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    api_key_env: str | None = Field(
        default=None,
        description=(
            "Name of the environment variable holding the API key; when set, every route but "
            "/health needs `Authorization: Bearer <key>`. The key itself is never a flag."
        ),
    )
    max_client_batch_size: PositiveInt = Field(
        default=1000,
        description=(
            "Most pairs (documents) per request; past it, HTTP 413 with TEI's message naming "
            "the limit, so clients split their requests."
        ),
    )
    max_concurrent_requests: PositiveInt = Field(
        default=64,
        description="Requests scored at once; past it, HTTP 429 with Retry-After.",
    )
    max_request_bytes: PositiveInt = Field(
        default=8 * 2**20, description="Largest request body in bytes; past it, HTTP 413."
    )
    request_timeout: PositiveFloat = Field(
        default=30.0,
        description="Seconds a request may take, queueing included; past it, HTTP 504.",
    )
    shutdown_timeout: PositiveFloat = Field(
        default=30.0,
        description=(
            "Seconds SIGTERM waits for the requests in flight (new ones get 503) before exiting."
        ),
    )
    retry_after: PositiveInt = Field(
        default=1, description="Seconds a 429 or 503 answer asks the client to wait."
    )

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "api_key_env is the NAME of an environment variable (letters, digits, _), "
                "not the key itself"
            )
        return value
