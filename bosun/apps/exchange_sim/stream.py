"""The user-data stream: listen keys (POST/PUT/DELETE /api/v3/userDataStream), the websocket
/ws/<listenKey>, and the WebSocket API's `userDataStream.subscribe.signature` on /ws-api/v3 (what
ccxt.pro uses for spot). Each connection has a bounded queue and a writer; the faults cut streams,
duplicate or reorder execution reports."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from bosun.apps.exchange_sim.auth import Credentials, check_time
from bosun.apps.exchange_sim.errors import BinanceError
from bosun.apps.exchange_sim.faults import FaultState

LISTEN_KEY_TTL_S = 3600  # Binance closes a stream whose key was not kept alive for 60 minutes
MAX_LISTEN_KEYS = 64
MAX_CONNECTIONS = 64
QUEUE_LIMIT = 10_000  # events queued for one connection; a consumer that far behind is cut, as Binance does
CUT: dict[str, object] = {}  # queued after the events a connection still gets before a fault cuts it


Wrap = Callable[[dict[str, object]], list[dict[str, object]]]  # one event as a dialect's messages


class Connection:
    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, wrap: Wrap) -> None:
        self.ws, self.transport, self.wrap = ws, transport, wrap
        self.queue: asyncio.Queue[dict[str, object] | None] = asyncio.Queue(QUEUE_LIMIT)

    def offer(self, event: dict[str, object] | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.cut()

    def cut(self) -> None:
        """Drop the connection without a close frame, as a network fault would."""
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()

    def cut_after_queued(self) -> None:
        self.offer(CUT)

    async def write(self) -> None:
        while (event := await self.queue.get()) is not None:
            if event is CUT:
                self.cut()
                return
            for message in self.wrap(event):
                await self.ws.send_str(json.dumps(message, separators=(",", ":")))


class UserStreams:
    def __init__(self, credentials: Credentials, faults: FaultState, clock: Callable[[], int]) -> None:
        self.credentials, self.faults, self.clock = credentials, faults, clock
        self.listen_keys: dict[str, float] = {}  # key -> monotonic expiry
        self.connections: set[Connection] = set()  # those subscribed to the events
        self.open_sockets = 0
        self.events_sent = 0

    # ------------------------------------------------------------------ listen keys

    def create_key(self) -> str:
        self._expire()
        if self.listen_keys:  # Binance hands out one key per account and keeps it alive
            key = next(iter(self.listen_keys))
        else:
            key = secrets.token_urlsafe(45)[:60]
        self.listen_keys[key] = time.monotonic() + LISTEN_KEY_TTL_S
        while len(self.listen_keys) > MAX_LISTEN_KEYS:
            self.listen_keys.pop(next(iter(self.listen_keys)))
        return key

    def keep_alive(self, key: str | None) -> None:
        self._known(key)
        self.listen_keys[key] = time.monotonic() + LISTEN_KEY_TTL_S  # type: ignore[index]

    def close_key(self, key: str | None) -> None:
        self._known(key)
        self.listen_keys.pop(key)  # type: ignore[arg-type]

    def _known(self, key: str | None) -> None:
        self._expire()
        if not key:
            raise BinanceError(400, -1102,
                               "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
        if key not in self.listen_keys:
            raise BinanceError(400, -1125, "This listenKey does not exist.")

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, expiry in self.listen_keys.items() if expiry < now]:
            del self.listen_keys[key]

    # ------------------------------------------------------------------ events

    def publish(self, events: list[dict[str, object]]) -> None:
        """One step's events to every connection, through the stream faults."""
        faults = self.faults.faults
        reports = [e for e in events if e["e"] == "executionReport"]
        if faults.reorder_reports:
            reports.reverse()
        if faults.duplicate_reports:
            reports = [r for report in reports for r in (report, report)]
        ordered = reports + [e for e in events if e["e"] != "executionReport"]
        for event in ordered:
            if self.faults.left["stream_drop_after"] == 0:
                self.faults.left["stream_drop_after"] = -1
                for connection in list(self.connections):
                    connection.cut_after_queued()
                return  # the rest of this step is lost with the connections
            if self.faults.left["stream_drop_after"] > 0:
                self.faults.left["stream_drop_after"] -= 1
            self.events_sent += 1
            for connection in self.connections:
                connection.offer(event)

    # ------------------------------------------------------------------ websockets

    async def listen_key_stream(self, request: web.Request) -> web.WebSocketResponse:
        key = request.match_info["listen_key"]
        self._expire()
        if key not in self.listen_keys:
            raise web.HTTPBadRequest(text=json.dumps({"code": -1125, "msg": "This listenKey does not exist."}),
                                     content_type="application/json")
        return await self.serve(request, lambda event: [event], None)

    async def ws_api(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve(request, lambda event: [{"subscriptionId": 0, "event": event}], self._api_request)

    async def serve(self, request: web.Request, wrap: Wrap,
                    on_request: Callable[[web.WebSocketResponse, Connection, str], Awaitable[bool]] | None,
                    ) -> web.WebSocketResponse:
        """A user-stream websocket: `on_request` answers each text message (whether it subscribed the
        connection to the events), `wrap` turns each event into the messages the dialect sends."""
        if self.open_sockets >= MAX_CONNECTIONS:
            raise web.HTTPTooManyRequests(text="too many user-stream connections")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        connection = Connection(ws, request.transport, wrap)
        if on_request is None:  # a listen-key stream is subscribed by its URL
            self.connections.add(connection)
        writer = asyncio.create_task(connection.write())
        self.open_sockets += 1
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT or on_request is None:
                    continue
                if await on_request(ws, connection, message.data):
                    self.connections.add(connection)
        finally:
            self.open_sockets -= 1
            self.connections.discard(connection)
            connection.offer(None)
            writer.cancel()
        return ws

    async def _api_request(self, ws: web.WebSocketResponse, connection: Connection, text: str) -> bool:
        """One WebSocket API request; whether it subscribed the connection to the user stream."""
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            await ws.send_str(json.dumps({"id": None, "status": 400, "error": {
                "code": -1100, "msg": "Malformed request: expected a JSON object with id, method and params."}}))
            return False
        rid, method = req.get("id"), req.get("method")
        params = req.get("params") or {}
        try:
            if method == "userDataStream.subscribe.signature":
                self._check_signed_params(params)  # type: ignore[arg-type]
                answer: dict[str, object] = {"id": rid, "status": 200, "result": {"subscriptionId": 0}}
            elif method == "userDataStream.unsubscribe":
                self.connections.discard(connection)
                answer = {"id": rid, "status": 200, "result": {}}
            elif method == "ping":
                answer = {"id": rid, "status": 200, "result": {}}
            else:
                raise BinanceError(400, -1020,
                                   f"Unknown method {method!r}: this simulator serves only the user data stream.")
        except BinanceError as exc:
            answer = {"id": rid, "status": exc.status, "error": exc.body()}
        await ws.send_str(json.dumps(answer))
        return answer.get("status") == 200 and method == "userDataStream.subscribe.signature"

    def _check_signed_params(self, params: dict[str, object]) -> None:
        if not isinstance(params, dict):
            raise BinanceError(400, -1102, "Mandatory parameter 'params' was not sent, was empty/null, or malformed.")
        self.credentials.check_key(str(params.get("apiKey") or ""))
        check_time(str(params.get("timestamp") or ""), None if params.get("recvWindow") is None
                   else str(params["recvWindow"]), self.clock())
        # What ccxt and Binance's own clients sign: the other params sorted by name, not percent-encoded.
        signed = "&".join(f"{k}={_text(v)}" for k, v in sorted(params.items()) if k != "signature")
        self.credentials.check_signature(signed, str(params.get("signature") or ""))


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
