"""The service commands of ``lightmem``: ``serve`` (REST) and ``mcp`` (an MCP server)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _memory_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--memory-dir", default=None, help="memory directory (default settings)")
    source.add_argument("--config", default=None, help="configuration file (JSON, TOML or YAML)")


def _async_memory(args: argparse.Namespace) -> Any:
    from ..aio import AsyncLightMemory
    from ..config import load_config_file

    config = load_config_file(args.config) if args.config else {}
    return AsyncLightMemory(config, memory_dir=args.memory_dir)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .auth import Keys

    keys = Keys.load(args.keys)
    try:
        import uvicorn

        from .app import Limits, create_app
    except ImportError as exc:
        raise ConfigError(
            f"$: the service needs FastAPI and uvicorn ({exc.name} is missing): "
            f"pip install 'lightmem-core[service]'"
        ) from exc
    limits = Limits(
        max_body_bytes=args.max_body_bytes, max_messages=args.max_messages, max_limit=args.max_limit
    )
    app = create_app(_async_memory(args), keys, limits=limits, cors_origins=args.cors_origin)
    print(
        f"serving LightMem on http://{args.host}:{args.port} (docs: /docs, OpenAPI: /openapi.json)",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import asyncio

    from ..errors import ConfigError
    from .auth import Grant, Keys

    try:
        from .mcp import build_server, http_app
    except ImportError as exc:
        raise ConfigError(
            f"$: the MCP server needs the mcp SDK ({exc.name} is missing): "
            f"pip install 'lightmem-core[service]'"
        ) from exc
    memory = _async_memory(args)
    if args.transport == "stdio":
        grant = Grant(user_ids=frozenset([args.user_id])) if args.user_id else Grant(admin=True)
        server = build_server(memory, local_grant=grant)

        async def run_stdio() -> None:
            try:
                await server.run_stdio_async()
            finally:
                await memory.close()

        asyncio.run(run_stdio())
        return 0
    import uvicorn

    keys = Keys.load(args.keys)
    app = http_app(memory, keys, host=args.host)
    print(
        f"serving LightMem over MCP (streamable HTTP) on http://{args.host}:{args.port}/mcp",
        file=sys.stderr,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        asyncio.run(memory.close())
    return 0


def add_service_parsers(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the memory over HTTP (REST API with API keys)")
    _memory_source(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--keys",
        default=None,
        help="API keys file (JSON: key -> {user_ids: [...]} or {admin: true}); default "
        "$LIGHTMEM_API_KEYS",
    )
    p.add_argument("--max-body-bytes", type=int, default=1_048_576)
    p.add_argument("--max-messages", type=int, default=200, help="messages per add request")
    p.add_argument("--max-limit", type=int, default=100, help="largest search/list limit")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="allow browser calls from this origin (repeatable; CORS is off by default)",
    )
    p.add_argument("--ssl-certfile", default=None, help="TLS certificate (or use a proxy)")
    p.add_argument("--ssl-keyfile", default=None, help="TLS private key")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve the memory to MCP clients (stdio or streamable HTTP)")
    _memory_source(p)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument(
        "--user-id",
        default=None,
        help="stdio: act for this user only (default: any scope the calls name)",
    )
    p.add_argument("--host", default="127.0.0.1", help="http: address to listen on")
    p.add_argument("--port", type=int, default=8766, help="http: port")
    p.add_argument(
        "--keys",
        default=None,
        help="http: API keys file (as for `lightmem serve`); default $LIGHTMEM_API_KEYS",
    )
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_mcp)
