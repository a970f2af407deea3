"""REST half of the Discord stand-in: the HTTP routes discord.py calls, recorded as it goes.

Bot routes need ``Authorization: Bot <token>``; interaction callbacks and webhook follow-ups
(authenticated by their token in the URL) and the CDN do not. Unknown routes are logged,
collected in :attr:`RestApi.unknown_routes` and answered ``404 {"message": "Unknown", "code": 0}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .discord_gateway import JSON, Notifier, World, next_snowflake
from .discord_records import (
    EPHEMERAL,
    LOADING,
    InteractionRecord,
    MessageRecord,
    ResponseEvent,
    Uploads,
)

log = logging.getLogger("tests.standins.discord")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = r"/api/v{version:\d+}"


def json_response(body: Any, status: int = 200) -> web.Response:
    """JSON reply with the exact ``Content-Type: application/json`` discord.py requires."""
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def error(status: int, message: str, code: int) -> web.Response:
    """Discord-style error reply."""
    return json_response({"message": message, "code": code}, status)


async def read_body(request: web.Request) -> tuple[Any, Uploads]:
    """Parse a JSON or multipart (``payload_json`` + ``files[n]``) request body."""
    if not request.content_type.startswith("multipart/"):
        return (await request.json() if request.can_read_body else {}), {}
    payload: Any = {}
    uploads: Uploads = {}
    async for part in await request.multipart():
        name = getattr(part, "name", None) or ""
        if name == "payload_json":
            payload = json.loads(await part.text())  # type: ignore[union-attr]
        elif name.startswith("files["):
            index = int(name[6:-1])
            blob = bytes(await part.read())  # type: ignore[union-attr]
            uploads[index] = (getattr(part, "filename", None) or f"file{index}", blob)
    return payload, uploads


class RestApi:
    """State and handlers behind the REST routes (messages, interactions, commands)."""

    def __init__(self, world: World, notifier: Notifier, *, token_lifetime: float) -> None:
        self.world = world
        self.notifier = notifier
        self.token_lifetime = token_lifetime
        self.cdn_url = ""  #: set by the stand-in once the port is known
        self.gateway_url = ""
        self.messages: dict[int, MessageRecord] = {}  #: every message the bot created
        self.channel_log: dict[int, list[MessageRecord]] = {c: [] for c in world.channel_ids}
        #: (parent channel id, thread id, name) of every thread the bot started, in order
        self.thread_requests: list[tuple[int, int, str]] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self.commands: dict[int | None, list[JSON]] = {}  #: scope (guild id / None) -> commands
        self.requests: list[str] = []  #: "METHOD /path" of every request
        self.unknown_routes: list[str] = []

    def register(self, record: InteractionRecord) -> None:
        """Make an interaction's callback and webhook routes known before it is dispatched."""
        self.interactions[record.id] = record
        self._by_token[record.token] = record

    def find_command(self, name: str, guild_id: int | None, kind: int = 1) -> JSON | None:
        """Synced command called ``name``: guild scope first, then global."""
        for scope in (guild_id, None):
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == kind:
                    return cmd
        return None

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table; the catch-all for unknown routes comes last."""
        cmds = ("/applications/{app_id}/commands",
                "/applications/{app_id}/guilds/{guild_id}/commands")
        msg = API + "/channels/{channel_id}/messages/{message_id}"
        hook = API + "/webhooks/{app_id}/{token}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", API + "/users/@me", self._me),
            ("GET", API + "/users/{user_id}", self._user),
            ("GET", API + "/oauth2/applications/@me", self._application),
            ("GET", API + "/applications/@me", self._application),
            ("GET", API + "/gateway", self._gateway),
            ("GET", API + "/gateway/bot", self._gateway),
            *((m, API + p, h) for p in cmds for m, h in (
                ("GET", self._list_commands), ("PUT", self._put_commands),
                ("POST", self._post_command))),
            *(("DELETE", API + p + "/{command_id}", self._delete_command) for p in cmds),
            ("GET", API + "/guilds/{guild_id}", self._guild),
            ("GET", API + "/guilds/{guild_id}/channels", self._guild),
            ("GET", API + "/guilds/{guild_id}/roles", self._guild),
            ("GET", API + "/guilds/{guild_id}/members/{user_id}", self._member),
            ("GET", API + "/channels/{channel_id}", self._channel),
            ("GET", API + "/channels/{channel_id}/messages", self._history),
            ("POST", API + "/channels/{channel_id}/messages", self._create_message),
            ("GET", msg, self._channel_message),
            ("PATCH", msg, self._channel_message),
            ("DELETE", msg, self._channel_message),
            ("POST", msg + "/threads", self._thread_from_message),
            ("POST", API + "/channels/{channel_id}/threads", self._thread),
            ("POST", API + "/channels/{channel_id}/typing", self._no_content),
            ("PUT", msg + "/reactions/{emoji}/@me", self._no_content),
            ("DELETE", msg + "/reactions/{emoji}/@me", self._no_content),
            ("POST", API + "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", hook, self._followup),
            ("GET", hook + "/messages/{message_id}", self._webhook_message),
            ("PATCH", hook + "/messages/{message_id}", self._webhook_message),
            ("DELETE", hook + "/messages/{message_id}", self._webhook_message),
            ("GET", "/cdn/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn),
            ("*", "/{tail:.*}", self._unknown),
        ]
        return [web.route(method, path, handler) for method, path, handler in table]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log every request and enforce the bot token on bot-authenticated routes."""
        self.requests.append(f"{request.method} {request.path}")
        path = request.path
        public = path == "/" or path.startswith("/cdn/") or any(
            f"/{p}/" in path for p in ("webhooks", "interactions"))
        if not public and request.headers.get("Authorization") != f"Bot {self.world.token}":
            return error(401, "401: Unauthorized", 0)
        return await handler(request)

    def _msg(self, message: MessageRecord) -> JSON:
        return message.to_payload(self.world, self.cdn_url)

    def _new_message(
        self, channel_id: int, record: InteractionRecord | None = None
    ) -> MessageRecord:
        message = MessageRecord(next_snowflake(), channel_id, self.world.bot.id)
        if record is not None:
            message.interaction_id, message.webhook_id = record.id, self.world.application_id
        self.messages[message.id] = message
        return message

    # -- identity, gateway, guild -------------------------------------------------------------
    async def _me(self, request: web.Request) -> web.Response:
        me = self.world.user_payload(self.world.bot.id)
        return json_response(me | {"verified": True, "mfa_enabled": False, "flags": 0})

    async def _user(self, request: web.Request) -> web.Response:
        user_id = int(request.match_info["user_id"])
        if user_id not in self.world.users:
            return error(404, "Unknown User", 10013)
        return json_response(self.world.user_payload(user_id))

    async def _application(self, request: web.Request) -> web.Response:
        return json_response(self.world.application_payload())

    async def _gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _guild(self, request: web.Request) -> web.Response:
        if int(request.match_info["guild_id"]) != self.world.guild_id:
            return error(404, "Unknown Guild", 10004)
        guild = self.world.guild_payload()
        tail = request.path.rsplit("/", 1)[-1]
        return json_response(guild.get(tail, guild) if tail in ("channels", "roles") else guild)

    async def _member(self, request: web.Request) -> web.Response:
        user_id = int(request.match_info["user_id"])
        if user_id not in self.world.users:
            return error(404, "Unknown Member", 10007)
        return json_response(self.world.member_payload(user_id))

    # -- application commands -----------------------------------------------------------------
    def _stored_command(self, scope: int | None, cmd: JSON) -> JSON:
        old = next((c for c in self.commands.get(scope, []) if c["name"] == cmd["name"]
                    and c.get("type", 1) == cmd.get("type", 1)), None)
        stored = cmd | {"id": old["id"] if old else str(next_snowflake()),
                        "application_id": str(self.world.application_id),
                        "version": str(next_snowflake()), "type": cmd.get("type", 1)}
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    @staticmethod
    def _scope(request: web.Request) -> int | None:
        guild_id = request.match_info.get("guild_id")
        return None if guild_id is None else int(guild_id)

    async def _list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.commands.get(self._scope(request), []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        self.commands[scope] = [self._stored_command(scope, cmd) for cmd in body]
        await self.notifier.changed()
        return json_response(self.commands[scope])

    async def _post_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body, _ = await read_body(request)
        stored = self._stored_command(scope, body)
        rest = [c for c in self.commands.get(scope, []) if c["id"] != stored["id"]]
        self.commands[scope] = [*rest, stored]
        await self.notifier.changed()
        return json_response(stored, 201)

    async def _delete_command(self, request: web.Request) -> web.Response:
        scope, command_id = self._scope(request), request.match_info["command_id"]
        self.commands[scope] = [c for c in self.commands.get(scope, []) if c["id"] != command_id]
        return web.Response(status=204)

    # -- channels -----------------------------------------------------------------------------
    async def _channel(self, request: web.Request) -> web.Response:
        try:
            return json_response(self.world.channel_payload(int(request.match_info["channel_id"])))
        except KeyError:
            return error(404, "Unknown Channel", 10003)

    async def _history(self, request: web.Request) -> web.Response:
        log_ = self.channel_log.get(int(request.match_info["channel_id"]))
        if log_ is None:
            return error(404, "Unknown Channel", 10003)
        limit = int(request.query.get("limit", 50))
        live = [self._msg(m) for m in reversed(log_) if not m.deleted]
        return json_response(live[:limit])

    async def _create_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.channel_log:
            return error(404, "Unknown Channel", 10003)
        body, uploads = await read_body(request)
        message = self._new_message(channel_id)
        message.apply(body, uploads, edit=False)
        self.channel_log[channel_id].append(message)
        await self.notifier.changed()
        return json_response(self._msg(message))

    async def _channel_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["message_id"]))
        if (message is None or message.deleted or message.ephemeral
                or str(message.channel_id) != request.match_info["channel_id"]):
            return error(404, "Unknown Message", 10008)
        if request.method == "PATCH":
            body, uploads = await read_body(request)
            message.apply(body, uploads, edit=True)
        elif request.method == "DELETE":
            message.deleted = True
        await self.notifier.changed()
        return web.Response(status=204) if message.deleted else json_response(self._msg(message))

    async def _thread_from_message(self, request: web.Request) -> web.Response:
        """Start a public thread on a message: the thread's id is the message's id."""
        message = self.messages.get(int(request.match_info["message_id"]))
        if message is None or message.deleted or \
                str(message.channel_id) != request.match_info["channel_id"]:
            return error(404, "Unknown Message", 10008)
        body, _ = await read_body(request)
        return await self._new_thread(message.channel_id, message.id, body)

    async def _thread(self, request: web.Request) -> web.Response:
        """Start a public thread without a starter message."""
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channel_ids:
            return error(404, "Unknown Channel", 10003)
        body, _ = await read_body(request)
        return await self._new_thread(channel_id, next_snowflake(), body)

    async def _new_thread(self, parent: int, thread_id: int, body: JSON) -> web.Response:
        if thread_id in self.world.threads:
            return error(400, "A thread has already been created for this message", 160004)
        self.world.threads[thread_id] = (parent, str(body.get("name") or "thread"))
        self.channel_log[thread_id] = []
        self.thread_requests.append((parent, thread_id, str(body.get("name") or "")))
        await self.notifier.changed()
        return json_response(self.world.thread_payload(thread_id), 201)

    async def _no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    # -- interactions -------------------------------------------------------------------------
    async def _callback(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        body, uploads = await read_body(request)
        record = self.interactions.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["token"]:
            return error(404, "Unknown interaction", 10062)
        event = ResponseEvent("callback", now - record.dispatched_at, 200, body)
        record.events.append(event)
        if record.initial is not None or event.elapsed > record.deadline:
            record.rejected.append(event)
            record.late = record.late or record.initial is None
            event.status = 404 if record.initial is None else 400
            await self.notifier.changed()
            if event.status == 404:
                log.warning("stand-in: late first callback %s", record.describe())
                return error(404, "Unknown interaction", 10062)
            return error(400, "Interaction has already been acknowledged.", 40060)
        record.initial = event
        kind, data = event.type, event.data
        message: MessageRecord | None = None
        if kind in (4, 5):
            message = record.original = self._new_message(record.channel_id, record)
            if kind == 5:
                message.flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            else:
                event.attachments = message.apply(data, uploads, edit=False)
        elif kind in (6, 7):
            message = self.messages.get(int(record.payload.get("message", {}).get("id", 0)))
            record.original = message
            if kind == 7 and message is not None:
                event.attachments = message.apply(data, uploads, edit=True)
        elif kind == 8:
            record.choices = list(data.get("choices", []))
        elif kind == 9:
            record.modal = data
        event.message_id = None if message is None else message.id
        await self.notifier.changed()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        reply: JSON = {"interaction": {
            "id": str(record.id), "type": record.type, "response_message_loading": kind == 5,
            "response_message_ephemeral": message is not None and message.ephemeral}}
        if message is not None:
            reply["interaction"]["response_message_id"] = str(message.id)
        if kind not in (1, 8):
            reply["resource"] = {"type": kind}
            if message is not None and kind in (4, 5, 7):
                reply["resource"]["message"] = self._msg(message)
        return json_response(reply)

    def _webhook_record(self, request: web.Request) -> InteractionRecord | web.Response:
        record = self._by_token.get(request.match_info["token"])
        if record is None or request.match_info["app_id"] != str(self.world.application_id):
            return error(404, "Unknown Webhook", 10015)
        if record.elapsed() > self.token_lifetime:
            return error(401, "Invalid Webhook Token", 50027)
        if record.initial is None:
            return error(404, "Unknown Webhook", 10015)
        return record

    async def _followup(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        body, uploads = await read_body(request)
        first = record.original
        if record.callback_type == 5 and first and first.loading and not record.followups:
            message = first  # Discord turns the "thinking" placeholder into the first follow-up
            files = message.apply(body, uploads, edit=True)
        else:
            message = self._new_message(record.channel_id, record)
            files = message.apply(body, uploads, edit=False)
        record.followups.append(message)
        event = ResponseEvent("followup", record.elapsed(), 200, body, message.id, files)
        record.events.append(event)
        await self.notifier.changed()
        if request.query.get("wait", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        return json_response(self._msg(message))

    async def _webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        key = request.match_info["message_id"]
        is_original = key == "@original"
        if is_original:
            message = record.original
        else:
            message = next((m for m in record.messages if str(m.id) == key), None)
        suffix = "original" if is_original else "message"
        kind = {"GET": "get_", "PATCH": "edit_", "DELETE": "delete_"}[request.method] + suffix
        event = ResponseEvent(kind, record.elapsed(), 200)
        record.events.append(event)
        if message is None or message.deleted:
            event.status = 404
            await self.notifier.changed()
            return error(404, "Unknown Message", 10008)
        event.message_id = message.id
        if request.method == "PATCH":
            event.body, uploads = await read_body(request)
            event.attachments = message.apply(event.body, uploads, edit=True)
        elif request.method == "DELETE":
            message.deleted = True
        await self.notifier.changed()
        return web.Response(status=204) if message.deleted else json_response(self._msg(message))

    # -- CDN and fallback ---------------------------------------------------------------------
    async def _cdn(self, request: web.Request) -> web.Response:
        wanted = int(request.match_info["attachment_id"])
        for message in self.messages.values():
            for att in message.attachments:
                if att.id == wanted:
                    return web.Response(body=att.data, content_type=att.content_type)
        return error(404, "Not Found", 0)

    async def _unknown(self, request: web.Request) -> web.Response:
        route = f"{request.method} {request.path_qs}"
        log.warning("discord stand-in: unknown route %s", route)
        self.unknown_routes.append(route)
        return error(404, "Unknown", 0)
