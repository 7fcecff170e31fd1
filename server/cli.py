"""``mcp-ledger``: serve the MCP server, and query, summarise and verify its ledger."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import orjson

from mcp_ledger import provenance
from mcp_ledger.provenance import otlp
from mcp_ledger.server.settings import ServerSettings, SettingsError, add_model_arguments, model_from_namespace

__all__ = ["main"]

DESCRIPTION = """\
mcp-ledger: an MCP server for operational work (Docker, GitHub, Kubernetes, the Hugging Face hub,
model inference) that records every tool call as a span in a hash-chained ledger.

  mcp-ledger serve                 run the server over stdio (what an MCP client launches)
  mcp-ledger query --tool T        list recorded calls, newest first
  mcp-ledger stats --since 1d      per-tool counts, error rates and durations
  mcp-ledger errors --since 1d     what keeps failing: failures grouped by tool and error
  mcp-ledger tail -f               follow new calls of every server writing the ledger
  mcp-ledger verify                check that every chain in the ledger is intact
  mcp-ledger key show              print the public key that checks the signed checkpoints
  mcp-ledger prove SPAN_ID         an inclusion proof of a span that anyone can check offline
  mcp-ledger index --rebuild       recreate the query index from the ledger files
  mcp-ledger export --out DIR      the spans as Parquet files by day (or --format jsonl) for a data lake
  mcp-ledger export --format otlp --endpoint URL   send recorded calls to an OpenTelemetry collector
  mcp-ledger demo                  a real client session against the server, then its ledger

The ledger lives in $MCP_LEDGER_DIR (default ~/.local/state/mcp-ledger); every command takes
--ledger-dir. Add --json to query, stats, errors and verify for machine-readable output."""


def _ledger(args: argparse.Namespace) -> provenance.Ledger:
    return provenance.Ledger(args.ledger_dir or None)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _group_settings(args: argparse.Namespace) -> dict[str, Any]:
    from mcp_ledger.tools import group_headers

    return {
        header.name: model_from_namespace(header.settings, args, prefix=f"{header.name}_") for header in group_headers()
    }


def _exit_on_sigterm(app: Any) -> None:
    """SIGTERM (what a client sends after closing stdin, or instead of it) ends a stdio server now.

    The stdio reader is blocked in a thread that no cancellation reaches while stdin stays open, so
    the ledger is closed from another thread — after any append in progress, under the store's lock —
    and the process exits. Every acknowledged span is already written."""

    def close_and_exit() -> None:
        try:
            app.close()
        finally:
            os._exit(0)

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=close_and_exit, name="mcp-ledger-sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _workers_problem(settings: ServerSettings) -> str | None:
    """Why ``--workers`` cannot apply to these settings (None: it can)."""
    if settings.transport != "http":
        return f"--workers {settings.workers} applies to --transport http; a stdio server serves one client"
    if "stateless" in settings.model_fields_set and not settings.stateless:
        return (
            f"--workers {settings.workers} serves stateless HTTP only (a session lives in one worker and "
            "cannot follow its client to another); drop --no-stateless (MCP_LEDGER_STATELESS) or use --workers 1"
        )
    return None


def _supervise(settings: ServerSettings, args: argparse.Namespace) -> int:
    """``--workers N``: check what every worker would refuse, bind the port, and run N workers on it."""
    from mcp_ledger.server import workers
    from mcp_ledger.server.auth import UNAUTHENTICATED_WARNING, http_auth, is_loopback

    try:
        auth = http_auth(settings)
    except SettingsError as exc:
        print(f"mcp-ledger serve: {exc}", file=sys.stderr)
        return 2
    if auth is None and settings.allow_unauthenticated and not is_loopback(settings.host):
        print(UNAUTHENTICATED_WARNING.format(host=settings.host, port=settings.port), file=sys.stderr)
    try:
        sockets = workers.bind(settings.host, settings.port, settings.workers)
    except workers.WorkerError as exc:
        print(f"mcp-ledger serve: {exc}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "mcp_ledger.server", *args.argv]
    host, port = sockets[0].getsockname()[:2]  # the port the system gave for --port 0
    where = f"http://[{host}]:{port}/mcp" if ":" in host else f"http://{host}:{port}/mcp"

    def serving() -> None:
        print(f"mcp-ledger serve: {settings.workers} workers serving {where}", file=sys.stderr, flush=True)

    try:
        return workers.supervise(command, settings.workers, sockets, on_ready=serving)
    finally:
        for sock in sockets:
            sock.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from mcp_ledger.server.app import create_app
    from mcp_ledger.server.gating import GatingError

    try:
        settings = model_from_namespace(ServerSettings, args)
        group_settings = _group_settings(args)
    except SettingsError as exc:
        print(f"mcp-ledger serve: {exc}", file=sys.stderr)
        return 2
    stdio = settings.transport == "stdio"
    from mcp_ledger.server import workers

    inherited = None if stdio else workers.inherited_socket()
    if settings.workers > 1 or inherited is not None:
        problem = _workers_problem(settings)
        if problem:
            print(f"mcp-ledger serve: {problem}", file=sys.stderr)
            return 2
        settings = settings.model_copy(update={"stateless": True})
        if inherited is None:
            return _supervise(settings, args)
    auth = None
    try:
        if stdio:
            if settings.auth != "none":
                print("mcp-ledger serve: --auth applies to --transport http; ignored over stdio", file=sys.stderr)
        else:
            from mcp_ledger.server.auth import http_auth

            auth = http_auth(settings)
            if auth is None and settings.allow_unauthenticated:
                from mcp_ledger.server.auth import UNAUTHENTICATED_WARNING, is_loopback

                if not is_loopback(settings.host) and inherited is None:  # the supervisor said it once
                    print(UNAUTHENTICATED_WARNING.format(host=settings.host, port=settings.port), file=sys.stderr)
        app = create_app(
            settings,
            group_settings,
            network_transport="pipe" if stdio else "tcp",
            process_connection_id=provenance.ProvenanceMiddleware.new_process_connection_id() if stdio else None,
            authenticated=auth is not None,
        )
    except (GatingError, SettingsError, provenance.keys.CheckpointKeyError) as exc:
        print(f"mcp-ledger serve: {exc}", file=sys.stderr)
        return 2
    try:
        if stdio:
            import anyio

            from mcp_ledger.server.transport import serve_stdio

            _exit_on_sigterm(app)
            anyio.run(serve_stdio, app)
        else:
            # uvicorn turns SIGTERM and SIGINT into a graceful shutdown, then raises the signal again with
            # the handler it found: SIGTERM's then ends up here, as SIGINT's does, and the ledger is closed
            # below (with the default handler the process died before closing its chain).
            import uvicorn

            from mcp_ledger.server.transport import http_app

            signal.signal(signal.SIGTERM, _interrupt)
            served = http_app(app, host=settings.host, stateless=settings.stateless, auth=auth)
            level = settings.log_level.lower()
            if inherited is not None:
                workers.run_worker(served, inherited, log_level=level)
            else:
                config = uvicorn.Config(
                    served, host=settings.host, port=settings.port, log_config=None, log_level=level
                )
                uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # closing is quick; let it finish the flush
        app.close()
    return 0


_OBJECTS_WIDTH = 160
_ONE_LINE = str.maketrans({"\n": " ", "\r": " ", "\t": " "})
_SPAN_HEADERS = ["START (UTC)", "SPAN", "TOOL", "CALLER", "STATUS", "MS", "ERROR", "OBJECTS"]


def _objects(span: dict[str, Any]) -> str:
    """What a call touched, from its upstream facts: ``key=value`` with the group's own prefix left out,
    a list as its first item and how many more, cut to a table's width (``--json`` has everything)."""
    upstream = span.get("upstream")
    if not isinstance(upstream, dict):
        return ""
    prefix = f"{span.get('group')}."
    parts = []
    for key, value in upstream.items():
        if isinstance(value, list):
            value = "" if not value else value[0] if len(value) == 1 else f"{value[0]}(+{len(value) - 1})"
        if value is None or value == "" or isinstance(value, dict):
            continue
        parts.append(f"{key.removeprefix(prefix)}={value}")
    text = " ".join(parts).translate(_ONE_LINE)  # a value may hold a line break: a row stays one line
    return text if len(text) <= _OBJECTS_WIDTH else text[: _OBJECTS_WIDTH - 1] + "…"


def _span_rows(spans: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for span in spans:
        detail = span.get("error_type") or ""
        if span.get("message"):
            detail = f"{detail}: {span['message']}"[:70]
        rows.append(
            [
                span["start"],
                span["span_id"],
                span["tool"],
                span.get("principal"),
                span["status"],
                f"{span['duration_ms']:.1f}",
                detail,
                _objects(span),
            ]
        )
    return rows


class _Filters(TypedDict):
    tool: str | None
    group: str | None
    status: str | None
    session: str | None
    trace: str | None
    since: str | None
    until: str | None
    principal: str | None


def _filters(args: argparse.Namespace) -> _Filters:
    """The filters shared by query and tail (see _add_query_filters)."""
    return _Filters(
        tool=args.tool,
        group=args.group,
        status=args.status,
        session=args.session,
        trace=args.trace,
        since=args.since,
        until=args.until,
        principal=args.principal,
    )


def _existing_ledger(args: argparse.Namespace) -> provenance.Ledger | None:
    ledger = _ledger(args)
    if not ledger.directory.is_dir():
        print(f"mcp-ledger {args.command}: no ledger directory at {ledger.directory}", file=sys.stderr)
        return None
    return ledger


def cmd_query(args: argparse.Namespace) -> int:
    try:
        page = _ledger(args).query(**_filters(args), limit=args.limit, cursor=args.cursor, full=args.json and args.full)
    except provenance.QueryError as exc:
        print(f"mcp-ledger query: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(page)
        return 0
    print(_table(_span_rows(page["spans"]), _SPAN_HEADERS))
    if page["next_cursor"]:
        print(f"\nmore: --cursor {page['next_cursor']}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    try:
        stats = _ledger(args).stats(since=args.since, until=args.until)
    except provenance.QueryError as exc:
        print(f"mcp-ledger stats: {exc}", file=sys.stderr)
        return 2
    export = otlp.export_status(_ledger(args).directory)
    if args.json:
        if export is not None:
            stats["otlp_export"] = export
        _print_json(stats)
        return 0
    rows = [
        [
            t["tool"],
            t["group"],
            t["count"],
            t["errors"],
            f"{t['error_rate']:.1%}",
            t["p50_ms"],
            t["p95_ms"],
            t["p99_ms"],
        ]
        for t in stats["tools"]
    ]
    print(_table(rows, ["TOOL", "GROUP", "CALLS", "ERRORS", "ERROR %", "P50 MS", "P95 MS", "P99 MS"]))
    print(f"\n{stats['count']} calls, {stats['errors']} errors")
    if export is not None:
        print(
            f"\nOTLP export, per server since it started ({export['dropped'] + export['failed']} spans not exported):"
        )
        rows = [
            [
                w.get("chain"),
                w.get("endpoint"),
                w.get("state"),
                w.get("exported"),
                w.get("dropped"),
                w.get("failed"),
                w.get("pending"),
                w.get("updated"),
            ]
            for w in export["servers"]
        ]
        print(_table(rows, ["SERVER", "ENDPOINT", "STATE", "EXPORTED", "DROPPED", "FAILED", "PENDING", "UPDATED"]))
    return 0


_SIGNATURE_WIDTH = 90


def _cut(text: str, width: int) -> str:
    text = text.translate(_ONE_LINE)
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_errors(args: argparse.Namespace) -> int:
    try:
        answer = _ledger(args).errors(
            since=args.since, until=args.until, group=args.group, tool=args.tool, limit=args.limit
        )
    except provenance.QueryError as exc:
        print(f"mcp-ledger errors: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(answer)
        return 0
    rows = [
        [
            group["last_seen"],
            group["first_seen"],
            group["count"],
            group["tool"],
            _cut(group["signature"], _SIGNATURE_WIDTH),
            _objects({"group": group["group"], "upstream": group["objects"][0]}) if group["objects"] else "",
            (group["span_ids"] or [""])[0],
        ]
        for group in answer["groups"]
    ]
    headers = ["LAST SEEN (UTC)", "FIRST SEEN", "COUNT", "TOOL", "ERROR", "LATEST OBJECT", "LATEST SPAN"]
    print(_table(rows, headers))
    more = answer["more_groups"]
    print(f"\n{answer['failures']} failed calls in {len(answer['groups']) + more} groups")
    if more:
        print(f"{more} more group{'s' if more > 1 else ''}: raise --limit, or narrow with --tool, --group, --since")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    ledger = _existing_ledger(args)
    if ledger is None:
        return 2
    if args.recover:
        for path in ledger.recover():
            print(f"repaired what a crashed writer left in {path.name}", file=sys.stderr)
    try:
        keys = [provenance.keys.load_public_key(value) for value in args.public_key or []]
    except provenance.keys.CheckpointKeyError as exc:
        print(f"mcp-ledger verify: {exc}", file=sys.stderr)
        return 2
    if args.checkpoint_witness and not keys:
        print("mcp-ledger verify: --checkpoint-witness needs --public-key", file=sys.stderr)
        return 2
    # Checkpoints are read before the chains, so every line they name is already on disk.
    signed = ledger.check_checkpoints(keys, witness=args.checkpoint_witness) if keys else None
    report = ledger.verify(workers=args.workers)
    ok = report.ok and (signed is None or signed.ok)
    if args.json:
        result = report.as_dict()
        result["ok"] = ok
        result["checkpoints"] = (
            signed.as_dict() if signed is not None else {"checked": False, "checkpoints": ledger.checkpoint_count()}
        )
        _print_json(result)
        return 0 if ok else 1
    for chain in report.chains:
        state = "ok" if chain.ok else f"BROKEN at {chain.failure}"
        live = " (live)" if chain.live else ""
        print(f"{chain.chain}{live}: {chain.segments} segment(s), {chain.spans} spans: {state}")
    for tail in report.unfinished:
        print(f"note: {tail}; `mcp-ledger verify --recover` sets it aside")
    for torn in report.torn_files:
        print(f"note: {torn} holds a torn line set aside from a crashed writer")
    if signed is None:
        print(
            f"note: {ledger.checkpoint_count()} signed checkpoint(s) not checked: pass --public-key "
            "(`mcp-ledger key show`) to check the tail of every checkpointed chain"
        )
    else:
        witness = f", {signed.witness_checkpoints} at the witness" if signed.witness_checkpoints is not None else ""
        print(
            f"checkpoints: {signed.checkpoints} signed{witness}; {len(signed.covered)} chain(s) covered, "
            f"{len(signed.uncovered)} without any checkpoint"
        )
        for chain_name in signed.uncovered:
            print(f"note: chain {chain_name} has no checkpoint (its tail is not protected)")
        for failure in signed.failures:
            print(f"CHECKPOINT FAILED at {failure}")
    verdict = "verified" if ok else "FAILED"
    print(f"\n{verdict}: {len(report.chains)} chain(s), {report.spans} spans in {ledger.directory}")
    return 0 if ok else 1


def cmd_prove(args: argparse.Namespace) -> int:
    ledger = _existing_ledger(args)
    if ledger is None:
        return 2
    try:
        proof = ledger.prove(args.span_id)
    except (provenance.ProofError, provenance.QueryError) as exc:
        print(f"mcp-ledger prove: {exc}", file=sys.stderr)
        return 1
    text = orjson.dumps(proof, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if args.output:
        Path(args.output).write_bytes(text)
        print(f"wrote the inclusion proof of span {args.span_id} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text.decode())
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    try:
        keys = [provenance.keys.load_public_key(value) for value in args.public_key]
    except provenance.keys.CheckpointKeyError as exc:
        print(f"mcp-ledger verify-proof: {exc}", file=sys.stderr)
        return 2
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"mcp-ledger verify-proof: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        proof = orjson.loads(data)
    except orjson.JSONDecodeError:
        proof = None
    check = provenance.verify_proof(proof, keys)
    if args.json:
        _print_json({"ok": check.ok, "reason": check.reason})
    elif check.ok:
        print(f"proof ok: {check.reason}")
    else:
        print(f"proof FAILED: {check.reason}")
    return 0 if check.ok else 1


def cmd_key_show(args: argparse.Namespace) -> int:
    path = Path(args.key).expanduser() if args.key else provenance.keys.default_key_path()
    existed = path.exists()
    try:
        key = provenance.keys.load_or_create_key(path)
    except provenance.keys.CheckpointKeyError as exc:
        print(f"mcp-ledger key show: {exc}", file=sys.stderr)
        return 2
    if not existed:
        print(f"created a new checkpoint key at {key.path}", file=sys.stderr)
    if args.pem:
        sys.stdout.write(key.public.pem().decode())
    else:
        print(key.public.text)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    import time

    ledger = _ledger(args)
    filters = _filters(args)
    try:
        spans, position = ledger.tail(last=args.lines, **filters)
        while True:
            for span in spans:
                if args.json:
                    sys.stdout.write(orjson.dumps(span).decode() + "\n")
                else:
                    row = _span_rows([span])[0]
                    sys.stdout.write("  ".join(str(cell) for cell in row).rstrip() + "\n")
            sys.stdout.flush()
            if not args.follow:
                return 0
            time.sleep(args.interval)
            spans, position = ledger.tail(after=position, **filters)
    except provenance.QueryError as exc:
        print(f"mcp-ledger tail: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def cmd_index(args: argparse.Namespace) -> int:
    import time

    ledger = _existing_ledger(args)
    if ledger is None:
        return 2
    started = time.perf_counter()
    added = ledger.reindex(rebuild=args.rebuild)
    if args.rebuild:
        print(f"rebuilt the index: {added} spans in {time.perf_counter() - started:.2f} s")
    else:
        print(f"index caught up: {added} new spans in {time.perf_counter() - started:.2f} s")
    return 0


def _export_otlp(args: argparse.Namespace, ledger: provenance.Ledger) -> int:
    """--format otlp: backfill a collector from the ledger (provenance.otlp.backfill)."""
    from mcp_ledger.server import VERSION
    from mcp_ledger.server.logs import configure_logging

    if not 1 <= args.batch_size <= 10_000:
        print("mcp-ledger export: --batch-size: expected 1 to 10000", file=sys.stderr)
        return 2
    if args.out:
        print("mcp-ledger export: --out is for file formats; --format otlp sends to --endpoint", file=sys.stderr)
        return 2
    try:
        found = otlp.traces_endpoint(args.endpoint or os.environ.get("MCP_LEDGER_OTLP_ENDPOINT"))
    except otlp.OtlpError as exc:
        print(f"mcp-ledger export: {str(exc).replace('--otlp-endpoint', '--endpoint')}", file=sys.stderr)
        return 2
    if found is None:
        print(
            "mcp-ledger export: --format otlp needs --endpoint URL (an OTLP/HTTP receiver such as "
            "http://127.0.0.1:4318), or OTEL_EXPORTER_OTLP_ENDPOINT",
            file=sys.stderr,
        )
        return 2
    endpoint = found[0]
    configure_logging("WARNING")  # the exporter's own errors, redacted, on stderr
    try:
        report = otlp.backfill(
            ledger.directory,
            endpoint,
            service_version=VERSION,
            batch_size=args.batch_size,
            **_filters(args),
        )
    except (provenance.QueryError, otlp.OtlpError) as exc:
        print(f"mcp-ledger export: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mcp-ledger export: interrupted; the batches sent so far stay sent", file=sys.stderr)
        return 130
    rate = report.spans / report.seconds if report.seconds > 0 else 0.0
    where = otlp.display_endpoint(endpoint)
    if args.json:
        _print_json({"endpoint": where, **dataclasses.asdict(report), "ok": report.ok})
    else:
        took = f"{report.seconds:.2f} s, {rate:,.0f}/s"
        print(f"exported {report.spans} spans in {report.batches} batches to {where} ({took})")
    if not report.ok:
        print(
            f"mcp-ledger export: the receiver did not take batch {report.failed_batch}; nothing after it was sent",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ledger = _existing_ledger(args)
    if ledger is None:
        return 2
    if args.format == "otlp":
        return _export_otlp(args, ledger)
    if args.endpoint:
        print(f"mcp-ledger export: --endpoint is for --format otlp, not --format {args.format}", file=sys.stderr)
        return 2
    if not args.out:
        print("mcp-ledger export: --out DIR is required (a new or empty directory)", file=sys.stderr)
        return 2
    to_stdout = args.out == "-"
    if to_stdout and args.format != "jsonl":
        print(f"mcp-ledger export: --format {args.format} writes files: give --out DIR", file=sys.stderr)
        return 2
    try:
        report = ledger.export(
            None if to_stdout else args.out,
            fmt=args.format,
            stdout=sys.stdout.buffer if to_stdout else None,
            **_filters(args),
        )
    except (provenance.QueryError, provenance.ExportError) as exc:
        print(f"mcp-ledger export: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "the lines written so far stay written" if to_stdout else "nothing of this run was kept"
        print(f"mcp-ledger export: interrupted; {kept}", file=sys.stderr)
        return 130
    if args.json and not to_stdout:
        _print_json(report.as_dict())
        return 0
    where = "stdout" if to_stdout else f"{len(report.files)} file(s) under {report.out}"
    print(
        f"exported {report.spans} of {report.scanned} spans ({report.bytes / 1e6:.1f} MB) to {where}"
        f" in {report.seconds:.1f} s",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mcp_ledger.server.demo import run_demo

    directory = Path(args.ledger_dir) if args.ledger_dir else Path(tempfile.mkdtemp(prefix="mcp-ledger-demo-"))
    return run_demo(directory)


def _add_query_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tool", help="only calls of this tool")
    parser.add_argument("--group", help="only calls of this tool group (docker, github, prov, …)")
    parser.add_argument("--status", choices=["ok", "error"], help="only successful or failed calls")
    parser.add_argument("--session", help="mcp.session.id or mcp-ledger.connection.id")
    parser.add_argument("--trace", help="only spans of this trace id")
    parser.add_argument("--since", help="ISO-8601 time (no offset = UTC) or an age: 15m, 2h, 7d")
    parser.add_argument("--until", help="ISO-8601 time or an age")
    parser.add_argument(
        "--principal", help="only calls of this caller (enduser.id: a tokens-file name, an OAuth sub, an OS user)"
    )


def _command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; the groups' flags are added only when ``argv`` runs ``serve`` (reading them imports
    every group's package, which no other command needs)."""
    parser = argparse.ArgumentParser(
        prog="mcp-ledger", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server. Every flag has an environment twin, shown in brackets.",
    )
    add_model_arguments(serve, ServerSettings)
    if _command(argv) == "serve":
        from mcp_ledger.tools import group_headers

        for header in group_headers():
            if header.settings.model_fields:
                section = serve.add_argument_group(f"{header.name} tools")
                add_model_arguments(section, header.settings, prefix=f"{header.name}_")  # type: ignore[arg-type]
    serve.set_defaults(func=cmd_serve)

    def reader(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--ledger-dir", default=os.environ.get("MCP_LEDGER_DIR"), help="ledger directory [env MCP_LEDGER_DIR]"
        )
        return p

    query = reader("query", "list recorded tool calls, newest first")
    _add_query_filters(query)
    query.add_argument(
        "--limit", type=int, default=provenance.Ledger.DEFAULT_LIMIT, help="page size (1-200, default 20)"
    )
    query.add_argument("--cursor", help="continue from a previous page")
    query.add_argument("--json", action="store_true", help="JSON output")
    query.add_argument("--full", action="store_true", help="with --json: full span records, not summaries")
    query.set_defaults(func=cmd_query)

    stats = reader("stats", "per-tool call counts, error rates and p50/p95/p99 durations")
    stats.add_argument("--since", help="ISO-8601 time or an age: 15m, 2h, 7d")
    stats.add_argument("--until", help="ISO-8601 time or an age")
    stats.add_argument("--json", action="store_true", help="JSON output")
    stats.set_defaults(func=cmd_stats)

    errors = reader("errors", "what keeps failing: failed calls grouped by tool and error signature, newest first")
    errors.add_argument("--tool", help="only failures of this tool")
    errors.add_argument("--group", help="only failures of this tool group (docker, github, prov, …)")
    errors.add_argument("--since", help="ISO-8601 time or an age: 15m, 2h, 7d")
    errors.add_argument("--until", help="ISO-8601 time or an age")
    errors.add_argument(
        "--limit",
        type=int,
        default=provenance.Ledger.DEFAULT_GROUPS,
        help=f"groups shown (1-{provenance.Ledger.MAX_GROUPS}, default {provenance.Ledger.DEFAULT_GROUPS})",
    )
    errors.add_argument("--json", action="store_true", help="JSON output: every group's objects and span ids")
    errors.set_defaults(func=cmd_errors)

    verify = reader("verify", "verify every hash chain in the ledger (exit 0 only when all are intact)")
    verify.add_argument("--json", action="store_true", help="JSON output")
    verify.add_argument(
        "--recover", action="store_true", help="first repair what crashed writers left (torn lines, reserved space)"
    )
    verify.add_argument(
        "--workers", type=int, default=None, help="processes to verify segments in (default: all cores for big ledgers)"
    )
    verify.add_argument(
        "--public-key",
        action="append",
        metavar="KEY",
        help="check the signed checkpoints with this key ('ed25519:…' from `mcp-ledger key show`, or a file); "
        "repeat for several keys",
    )
    verify.add_argument(
        "--checkpoint-witness", type=Path, metavar="DIR", help="also check the checkpoints held by this witness"
    )
    verify.set_defaults(func=cmd_verify)

    prove = reader("prove", "print an inclusion proof of a span against the latest signed checkpoint of its chain")
    prove.add_argument("span_id", metavar="SPAN_ID", help="16 hex digits, as in a result's _meta")
    prove.add_argument("-o", "--output", metavar="FILE", help="write the proof to FILE instead of stdout")
    prove.set_defaults(func=cmd_prove)

    verify_proof = sub.add_parser(
        "verify-proof",
        help="check an inclusion proof offline (exit 0 only when it holds)",
        description="Check an inclusion proof from `mcp-ledger prove` or prov_span, without the ledger.",
    )
    verify_proof.add_argument("file", metavar="FILE", help="the proof (JSON); - reads stdin")
    verify_proof.add_argument(
        "--public-key", action="append", required=True, metavar="KEY", help="'ed25519:…' or a file; repeatable"
    )
    verify_proof.add_argument("--json", action="store_true", help="JSON output")
    verify_proof.set_defaults(func=cmd_verify_proof)

    key = sub.add_parser("key", help="the Ed25519 key that signs checkpoints", description="The checkpoint key.")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    key_show = key_sub.add_parser(
        "show", help="print the public key (created on first use)", description="Print the checkpoint public key."
    )
    key_show.add_argument(
        "--key",
        default=os.environ.get("MCP_LEDGER_CHECKPOINT_KEY"),
        help="the private key file (default $XDG_CONFIG_HOME/mcp-ledger/checkpoint-key.pem) "
        "[env MCP_LEDGER_CHECKPOINT_KEY]",
    )
    key_show.add_argument("--pem", action="store_true", help="print it as a PEM public key")
    key_show.set_defaults(func=cmd_key_show)

    tail = reader("tail", "show the newest recorded calls of every writer; -f follows new ones as they land")
    _add_query_filters(tail)
    tail.add_argument("-n", "--lines", type=int, default=10, help="how many recent spans to show first")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new spans (Ctrl-C stops)")
    tail.add_argument("--interval", type=float, default=0.5, help="seconds between checks with -f")
    tail.add_argument("--json", action="store_true", help="one JSON summary per line")
    tail.set_defaults(func=cmd_tail)

    index = reader("index", "bring the SQLite sidecar index up to date, or --rebuild it from the segments")
    index.add_argument("--rebuild", action="store_true", help="delete and recreate the index")
    index.set_defaults(func=cmd_index)

    export = reader(
        "export",
        "write the recorded calls for a data lake (Parquet files by day, or JSON lines), "
        "or send them to an OpenTelemetry collector (--format otlp --endpoint URL)",
    )
    _add_query_filters(export)
    export.add_argument(
        "--format",
        choices=["parquet", "jsonl", "otlp"],
        default="parquet",
        help="parquet (needs pip install 'mcp-ledger[lake]'; the README documents its columns), jsonl "
        "(each span's line as it is in the ledger), or otlp (to --endpoint; needs mcp-ledger[otlp]); default parquet",
    )
    export.add_argument(
        "--out",
        metavar="DIR",
        help="a new or empty directory: day=YYYY-MM-DD/part-*.{parquet,jsonl}; with --format jsonl, - is stdout",
    )
    export.add_argument(
        "--endpoint",
        metavar="URL",
        help="--format otlp: the OTLP/HTTP receiver (http://host:4318; /v1/traces is added) "
        "[env MCP_LEDGER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT; "
        "headers from OTEL_EXPORTER_OTLP_HEADERS]",
    )
    export.add_argument("--batch-size", type=int, default=512, help="--format otlp: spans per request (default 512)")
    export.add_argument("--json", action="store_true", help="print the run's manifest (files, counts) as JSON")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="run a real client session against the server and show its ledger")
    demo.add_argument("--ledger-dir", help="ledger directory (default: a new temporary one)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.argv = list(argv)  # what the workers of `serve --workers N` are started with
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
