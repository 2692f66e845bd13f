"""The HTTP front of `trm-edge serve` (and of any Triton serving an exported repository, as
`trm-edge guard`): every request is bounded before Triton sees it.

Triton's KServe HTTP endpoint allocates a request's input buffers from the shapes the client
declares, before it compares them with the data or the model: a JSON request declaring
`"shape": [1099511627776, 81]` makes tritonserver abort (`std::bad_alloc`) and takes every
client down with it. So the public HTTP port is this small proxy (aiohttp, in a thread);
Triton's own HTTP listens on a private port behind it. For each inference request the proxy
checks the body size and every declared input against the model's limits (limits.py) and
answers 400 itself when they are out of bounds (404 for a model it has no limits for);
everything else passes through untouched.

It also tells the model about clients that hang up: Triton does not cancel an HTTP request
whose connection closed (only gRPC cancellation reaches the model), so the proxy gives each
request an id and, when its client disconnects, leaves a marker file named by that id in a
folder the model polls; the model then frees the request's slots at the next step.

gRPC goes to Triton directly: its inputs arrive as raw bytes whose sizes Triton checks.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.serving.limits import ModelLimits, RejectedRequest, check_infer_header

INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
# Headers that describe one hop, not the message (RFC 9110 7.6.1), plus the ones aiohttp recomputes.
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
               "content-length", "host"}


def tag_request(body: bytes, header_length: int | None) -> tuple[bytes, int | None, Any, str | None]:
    """(body, new header length, parsed JSON header, request id): an `id` is added to the JSON
    header when the client sent none, so a hang-up can be traced to the request."""
    raw = body if header_length is None else body[:header_length]
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        return body, header_length, None, None
    if not isinstance(header, dict):
        return body, header_length, header, None
    request_id = header.get("id")
    if not isinstance(request_id, str) or not request_id:
        request_id = f"trm-edge-{uuid.uuid4().hex}"
        header["id"] = request_id
        encoded = json.dumps(header, separators=(",", ":")).encode()
        if header_length is None:
            return encoded, None, header, request_id
        return encoded + body[header_length:], len(encoded), header, request_id
    return body, header_length, header, request_id


def cancel_marker(cancel_dir: Path, request_id: str) -> Path | None:
    """Where the marker of a hung-up request lives (None for ids that are not plain names)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", request_id) or request_id in (".", ".."):
        return None
    return cancel_dir / request_id


class HttpGuard:
    """The proxy: `start()` binds host:port in a background thread, `stop()` ends it."""

    def __init__(
        self, host: str, port: int, upstream: str, limits: dict[str, ModelLimits], cancel_dir: Path | None = None
    ) -> None:
        self.host, self.port, self.upstream = host, port, upstream
        self.limits = limits
        self.cancel_dir = cancel_dir  # None: no model listens for hang-ups
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            raise TrmEdgeError("serving needs aiohttp: pip install 'trm-edge[serve]'") from None
        self._thread = threading.Thread(target=self._serve, name="trm-edge-http-guard", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise TrmEdgeError(f"cannot listen on {self.host}:{self.port}: {self._error}")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # bind failure: reported by start()
            self._error = exc
            self._started.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

        biggest = max((lim.max_body_bytes for lim in self.limits.values()), default=1 << 20)
        app = web.Application(client_max_size=biggest)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Pass bodies through as they are: no compression the client did not ask for, none undone.
        self._client = ClientSession(
            self.upstream, timeout=ClientTimeout(total=None), connector=TCPConnector(limit=0), auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self._started.set()
            await self._stopping.wait()
        finally:
            await self._client.close()
            await runner.cleanup()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import ClientError, web

        body = await request.read()
        request_id = None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        match = INFER_PATH.match(request.path)
        if match and request.method == "POST":
            limits = self.limits.get(match.group(1))
            if limits is None:  # a model the guard cannot bound is not reachable through it
                return _error(web, f"model {match.group(1)!r} is not served here", status=404)
            length = request.headers.get("Inference-Header-Content-Length")
            try:
                header_length = int(length) if length is not None else None
            except ValueError:
                return _error(web, "Inference-Header-Content-Length must be an integer")
            if header_length is not None and not 0 <= header_length <= len(body):
                return _error(web, "Inference-Header-Content-Length is larger than the body")
            body, header_length, header, request_id = tag_request(body, header_length)
            binary_bytes = 0 if header_length is None else len(body) - header_length
            try:
                check_infer_header(header, limits, binary_bytes)
            except RejectedRequest as exc:
                return _error(web, str(exc))
            if header_length is not None:
                headers["Inference-Header-Content-Length"] = str(header_length)
        try:
            async with self._client.request(
                request.method, request.path_qs, data=body, headers=headers
            ) as upstream:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
        except asyncio.CancelledError:  # the client hung up: let the model free its slots
            if request_id is not None and self.cancel_dir is not None:
                marker = cancel_marker(self.cancel_dir, request_id)
                if marker is not None:
                    marker.touch()
            raise
        except (OSError, ClientError):
            return _error(web, "the inference server is not reachable", status=503)


def _error(web: Any, message: str, status: int = 400) -> Any:
    return web.json_response({"error": message}, status=status)
