"""Server settings: every flag has an ``MCP_LEDGER_*`` environment twin.

Clients configure MCP servers through ``env`` in their config, so anything a flag can say an
environment variable can say too. Flags win over the environment, which wins over defaults.
Group settings (``tools.group.GroupSettings``) get flags the same way, prefixed with the group name.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

__all__ = ["ServerSettings", "SettingsError", "add_model_arguments", "model_from_namespace"]

ENV_PREFIX = "MCP_LEDGER_"


class SettingsError(ValueError):
    """A flag or environment variable has a value that cannot be used."""


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ledger_dir: Path | None = Field(
        default=None,
        description="ledger directory (default $XDG_STATE_HOME/mcp-ledger or ~/.local/state/mcp-ledger)",
        json_schema_extra={"env": "MCP_LEDGER_DIR"},
    )
    toolsets: list[str] | None = Field(
        default=None, description="comma-separated toolsets to enable (default: all); prov is always on"
    )
    tools: list[str] = Field(default_factory=list, description="comma-separated single tools to add")
    exclude_tools: list[str] = Field(default_factory=list, description="comma-separated tools to remove")
    read_only: bool = Field(default=False, description="offer only tools annotated read-only")
    allow_destructive: bool = Field(
        default=False, description="offer destructive tools (they delete what no other call can bring back)"
    )
    call_timeout: float = Field(
        default=120.0, gt=0, description="seconds before a tool call is stopped (unless the tool sets its own)"
    )
    preload: list[str] = Field(
        default_factory=list,
        description="comma-separated toolsets whose code and backend load at start, in the background "
        "(infer loads its local model unless --no-infer-preload)",
    )
    transport: Literal["stdio", "http"] = Field(default="stdio", description="stdio, or streamable HTTP")
    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port")
    stateless: bool = Field(default=False, description="stateless streamable HTTP (for load balancers)")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="HTTP worker processes sharing --port, each writing its own chain; more than 1 serves "
        "stateless HTTP only (a session cannot follow a client from one worker to another)",
    )
    auth: Literal["none", "bearer", "oauth"] = Field(
        default="none",
        description="HTTP authentication: bearer (--auth-tokens-file) or oauth (an OAuth 2.1 resource server); "
        "a non-loopback --host refuses none",
    )
    auth_tokens_file: Path | None = Field(
        default=None,
        description="--auth bearer: lines of 'NAME TOKEN [read-only|read-write|all]' (# comments), re-read on change",
    )
    allow_unauthenticated: bool = Field(
        default=False, description="serve a non-loopback --host without authentication (a trusted network only)"
    )
    oauth_issuer: str | None = Field(default=None, description="--auth oauth: the authorization server's issuer URL")
    oauth_resource: str | None = Field(
        default=None,
        description="--auth oauth: this server's URL as clients reach it (https://host/mcp): the protected "
        "resource, and the audience tokens must name",
    )
    oauth_audience: list[str] = Field(
        default_factory=list, description="--auth oauth: accept these audiences instead of --oauth-resource"
    )
    oauth_jwks_url: str | None = Field(
        default=None, description="--auth oauth: the issuer's JWKS URL (tokens are JWTs checked locally)"
    )
    oauth_introspection_url: str | None = Field(
        default=None, description="--auth oauth: an RFC 7662 introspection endpoint instead of --oauth-jwks-url"
    )
    oauth_client_id: str | None = Field(default=None, description="--auth oauth: client id for introspection")
    oauth_client_secret_file: Path | None = Field(
        default=None, description="--auth oauth: file holding the client secret for introspection"
    )
    oauth_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"],
        description="--auth oauth: JWT signature algorithms, asymmetric only (default RS256,PS256,ES256,EdDSA)",
    )
    fsync: Literal["always", "batch", "never"] = Field(
        default="batch",
        description="always: a result waits until its span is on disk (group commit); batch: flushed within "
        "--fsync-interval-ms; never: left to the OS",
    )
    # Each flush stalls the next append while the tail page is written back: at 50 ms that cost
    # ~20 us per call in bench/overhead.py, at 1 s ~2 us (Redis's appendfsync everysec, same bound).
    fsync_interval_ms: int = Field(default=1000, ge=1, le=10_000, description="batch fsync interval")
    segment_mb: float = Field(default=64.0, gt=0, description="rotate a segment file at this size (MiB)")
    on_record_failure: Literal["refuse", "allow"] = Field(
        default="refuse", description="when a span cannot be written: refuse further calls, or run unrecorded"
    )
    checkpoints: bool = Field(
        default=True,
        description="sign checkpoints of this server's chain (they protect its tail; `mcp-ledger verify --public-key`)",
    )
    checkpoint_every: int = Field(
        default=1000, ge=0, description="write a checkpoint after this many lines (0: never by count)"
    )
    checkpoint_interval: float = Field(
        default=10.0, ge=0, description="seconds between checkpoints while lines are written (0: never by time)"
    )
    checkpoint_key: Path | None = Field(
        default=None,
        description="Ed25519 signing key, made on first use (default $XDG_CONFIG_HOME/mcp-ledger/checkpoint-key.pem)",
    )
    checkpoint_witness: Path | None = Field(
        default=None, description="also append every checkpoint to checkpoints.jsonl in this directory (another volume)"
    )
    preview_bytes: int = Field(default=1024, ge=0, le=65536, description="bytes of redacted preview per span")
    output_schemas: bool = Field(
        default=False,
        description="list each tool's output schema (for clients that validate structured results; about 27 KB more)",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="send every tool call's span to this OTLP/HTTP receiver (http://host:4318; /v1/traces is "
        "added); else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT; headers from "
        "OTEL_EXPORTER_OTLP_HEADERS (needs mcp-ledger[otlp])",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="WARNING", description="stderr log level")


def _env_name(name: str, prefix: str, field: Any) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    explicit = extra.get("env")
    if isinstance(explicit, str):
        return explicit
    return ENV_PREFIX + (prefix + name).upper().replace("-", "_")


def _base_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def add_model_arguments(parser: argparse.ArgumentParser, model: type[BaseModel], prefix: str = "") -> None:
    """Add one option per model field: ``--<prefix><field>`` with its environment twin in the help."""
    for name, field in model.model_fields.items():
        flag = "--" + (prefix + name).replace("_", "-")
        dest = (prefix + name).replace("-", "_")
        env = _env_name(name, prefix.replace("-", "_"), field)
        base = _base_type(field.annotation)
        shown = field.default
        default_text = "" if shown is None or shown is PydanticUndefined or shown == [] else f"; default {shown}"
        help_text = f"{field.description or ''}{default_text} [env {env}]"
        if base is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": help_text}
        if typing.get_origin(base) is Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif typing.get_origin(base) is list:
            kwargs["metavar"] = "A,B"
            kwargs["action"] = "append"  # repeatable: --infer-endpoint a=URL --infer-endpoint b=URL
        parser.add_argument(flag, **kwargs)


_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


def _from_text(value: str, annotation: Any, source: str) -> Any:
    """``source`` names where the text came from (the environment variable) for the error."""
    base = _base_type(annotation)
    if base is bool:
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        # Anything else is refused: reading "y" or a typo as false would silently serve every write tool.
        raise SettingsError(f"{source}: not a boolean; use true/false, 1/0, yes/no or on/off (any case)")
    if typing.get_origin(base) is list:
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def model_from_namespace(
    model: type[BaseModel],
    namespace: argparse.Namespace,
    prefix: str = "",
    environ: typing.Mapping[str, str] | None = None,
) -> Any:
    """Build ``model`` from parsed flags, falling back to the environment twins, then defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        dest = (prefix + name).replace("-", "_")
        value = getattr(namespace, dest, None)
        source = "--" + (prefix + name).replace("_", "-")
        if value is None:
            source = _env_name(name, prefix.replace("-", "_"), field)
            env_value = environ.get(source)
            if env_value is None or env_value == "":
                continue
            value = env_value
        if isinstance(value, list):  # a repeated flag: every occurrence counts
            value = ",".join(value)
        values[name] = _from_text(value, field.annotation, source) if isinstance(value, str) else value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            name = str(error["loc"][0]) if error["loc"] else "?"
            flag = "--" + (prefix + name).replace("_", "-")
            problems.append(f"{flag}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None
