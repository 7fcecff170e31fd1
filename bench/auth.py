"""What authentication costs per HTTP request, and what who-called adds to every span.

* **Per request** (in-process, no network): the authentication layer (``server.auth.require_auth``) in
  front of an ASGI app that does nothing, for no authentication, a bearer tokens file of 1, 100 and
  1,000 callers (a ``stat`` of the file, a SHA-256 and one constant-time compare per caller), and
  OAuth JWTs signed RS256 and ES256 (signature, ``exp``, ``iss``, ``aud``; the issuer's keys cached).
* **Per span**: the bytes the who-called attributes add to a span line (stdio: the OS user; bearer;
  OAuth), and the time the per-request lookup takes in ``ProvenanceMiddleware.call_attributes``
  (HTTP only; a stdio server's principal is part of the attributes cached per tool).

    python -m bench.auth            # about 20 s on 2 cores
    python -m bench.auth --quick    # smoke run

Prints the table and writes ``bench/results/auth-<UTC stamp>.json``, ``auth-latest.json`` and
``auth-latest.md`` (the table as the README shows it).
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bench.overhead import RESULTS_DIR, machine_info, source_info
from mcp_ledger.server.auth import HttpAuth, TokensFile, caller_span_attributes, local_principal, require_auth
from mcp_ledger.server.auth._caller import Caller, classes_from_scopes
from mcp_ledger.server.auth._oauth import JwtVerifier
from mcp_ledger.server.auth._tokens import _parse

__all__ = ["main"]

ISSUER = "https://id.example"
RESOURCE = "https://mcp.example/mcp"


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})


def _scope(token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"mcp.example"), (b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "client": ("127.0.0.1", 1)}


async def _per_request_us(app: Callable[..., Awaitable[None]], token: str | None, count: int) -> float:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = _scope(token)
    for _ in range(min(count, 50)):  # warm caches (the JWKS, the file's signature)
        await app(scope, receive, send)
    statuses.clear()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            await app(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    assert set(statuses) == {204}, statuses[:3]
    return best


def _tokens_file(directory: Path, callers: int) -> tuple[TokensFile, str]:
    tokens = [secrets.token_urlsafe(32) for _ in range(callers)]
    path = directory / f"tokens-{callers}"
    path.write_text("".join(f"caller{i} {token}\n" for i, token in enumerate(tokens)))
    path.chmod(0o600)
    return TokensFile(path), tokens[-1]


def _jwt_verifier(algorithm: str) -> tuple[JwtVerifier, str]:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    verifier = JwtVerifier(issuer=ISSUER, audiences=[RESOURCE], jwks_url=f"{ISSUER}/jwks", algorithms=[algorithm])
    public = jwt.PyJWK.from_dict(
        {**json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key())), "alg": algorithm}
    )
    verifier._jwks._keys = {"k1": public}  # the issuer's keys as fetched and cached
    verifier._jwks._fetched = time.monotonic()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "user-42", "scope": "mcp-ledger:read", "exp": now + 3600}
    return verifier, jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})


def _attribute_bytes(attributes: dict[str, Any]) -> int:
    """What the attributes add to a span line: their compact JSON, less the braces, plus a separating comma."""
    return len(orjson.dumps(attributes)) - 2 + 1


def _lookup_ns(count: int) -> float:
    """``ProvenanceMiddleware.call_attributes``' per-call work for an authenticated caller: look it up, merge."""
    from mcp.server.auth.middleware.auth_context import auth_context_var

    caller = Caller(
        principal="alice",
        method="bearer",
        fingerprint="sha256:0123456789abcdef",
        classes=classes_from_scopes(["mcp-ledger:write"]),
        scopes=["mcp-ledger:read", "mcp-ledger:write"],
    )
    reset = auth_context_var.set(caller)
    try:
        attributes = {f"k{i}": i for i in range(12)}
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter_ns()
            for _ in range(count):
                who = caller_span_attributes()
                if who:
                    attributes.copy().update(who)
            best = min(best, (time.perf_counter_ns() - started) / count)
        base = float("inf")
        for _ in range(3):
            started = time.perf_counter_ns()
            for _ in range(count):
                attributes.copy()
            base = min(base, (time.perf_counter_ns() - started) / count)
        return best - base
    finally:
        auth_context_var.reset(reset)


async def _measure(count: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    rows.append({"case": "no authentication (loopback)", "us": await _per_request_us(_noop, None, count)})
    with tempfile.TemporaryDirectory() as tmp:
        for callers in (1, 100, 1000):
            verifier, token = _tokens_file(Path(tmp), callers)
            app = require_auth(HttpAuth("bearer", verifier), _noop)
            rows.append({"case": f"bearer, tokens file of {callers:,}", "us": await _per_request_us(app, token, count)})
    for algorithm in ("RS256", "ES256"):
        jwt_verifier, token = _jwt_verifier(algorithm)
        app = require_auth(HttpAuth("oauth", jwt_verifier, resource=RESOURCE, issuer=ISSUER), _noop)
        rows.append({"case": f"OAuth JWT {algorithm}", "us": await _per_request_us(app, token, count)})
    bearer_entries, _ = _parse(f"alice {secrets.token_urlsafe(32)} read-write\n", Path("tokens"))
    oauth = Caller(
        principal="00u1abcd2EFGH3ijk4l5",
        method="oauth",
        fingerprint="sha256:0123456789abcdef",
        classes=classes_from_scopes(["mcp-ledger:write"]),
        scopes=["mcp-ledger:write"],
        client_id="claude-desktop",
    )
    span_bytes = {
        "stdio (OS user)": _attribute_bytes(local_principal()),
        "bearer": _attribute_bytes(dict(bearer_entries[0].caller.span_attributes)),
        "OAuth": _attribute_bytes(dict(oauth.span_attributes)),
    }
    return {"per_request": rows, "span_bytes": span_bytes, "caller_lookup_ns": _lookup_ns(count * 20)}


def _table(result: dict[str, Any]) -> str:
    baseline = result["per_request"][0]["us"]
    lines = ["| request through the auth layer | µs per request | added |", "|---|---:|---:|"]
    for row in result["per_request"]:
        lines.append(f"| {row['case']} | {row['us']:.1f} | {row['us'] - baseline:+.1f} |")
    lines += ["", "| who called, per span | bytes added to the line |", "|---|---:|"]
    lines += [f"| {name} | {size} |" for name, size in result["span_bytes"].items()]
    lines += ["", f"Per-call lookup of an HTTP caller's attributes: {result['caller_lookup_ns']:.0f} ns."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = anyio.run(_measure, 200 if args.quick else 2000)
    table = _table(result)
    print(table)
    record = {"started": started.isoformat(), "machine": machine_info(), "source": source_info(), **result}
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    (args.out / f"auth-{started.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    (args.out / "auth-latest.json").write_text(text)
    (args.out / "auth-latest.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
