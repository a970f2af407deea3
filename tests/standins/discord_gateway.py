"""Gateway half of the Discord stand-in: the fake guild, payload builders and the websocket.

Used through :class:`tests.standins.discord_api.DiscordStandin`; the pieces here are public
so tests can build extra payloads (``world.member_payload(...)``) when they need to.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

log = logging.getLogger("tests.standins.discord")

JSON = dict[str, Any]
T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000
TIMESTAMP = "2024-01-01T00:00:00+00:00"
# view channel, send messages, embed links, attach files, read history, add reactions,
# external emojis, use application commands
DEFAULT_PERMISSIONS = sum(1 << bit for bit in (6, 10, 11, 14, 15, 16, 18, 31))
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 51) - 1
_counter = itertools.count()


def next_snowflake() -> int:
    """Return a fresh, time-ordered Discord snowflake."""
    millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (millis << 22) | (next(_counter) & 0x3FFFFF)


class StandinTimeout(TimeoutError):
    """A bounded wait on the stand-in ran out; the message describes what was missing."""


class Notifier:
    """Wakes bounded waiters whenever the stand-in records something new."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()

    async def changed(self) -> None:
        """Signal that recorded state changed (call after every mutation)."""
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(
        self, check: Callable[[], T | None], *, timeout: float, what: str | Callable[[], str]
    ) -> T:
        """Return the first truthy ``check()``; raise :class:`StandinTimeout` after ``timeout`` s.

        ``check`` is re-evaluated on every change and at least every 50 ms, so time-based
        conditions (such as an interaction's 3-second deadline) are noticed as well.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._cond:
            while True:
                result = check()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    text = what() if callable(what) else what
                    raise StandinTimeout(f"timed out after {timeout:.2f}s waiting for {text}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout=min(remaining, 0.05))


@dataclass
class StandinUser:
    """A guild member known to the stand-in; ``role_ids`` become ``Member.roles``."""

    id: int
    name: str = ""
    role_ids: list[int] = field(default_factory=list)
    bot: bool = False

    def __post_init__(self) -> None:
        self.name = self.name or f"user{self.id}"


@dataclass
class StandinRole:
    """A guild role; ``permissions`` is Discord's permission bit field."""

    id: int
    name: str = ""
    permissions: int = 0
    position: int = 1

    def __post_init__(self) -> None:
        self.name = self.name or f"role{self.id}"


class World:
    """The single fake guild (channels, roles, members) plus the bot user and application."""

    def __init__(
        self,
        *,
        guild_id: int,
        guild_name: str,
        channel_ids: Iterable[int],
        users: Iterable[StandinUser | int],
        roles: Iterable[StandinRole | int],
        bot_user_id: int,
        bot_name: str,
        application_id: int,
        token: str,
        everyone_permissions: int,
        app_permissions: int,
    ) -> None:
        self.guild_id = guild_id
        self.guild_name = guild_name
        self.channel_ids = list(channel_ids)
        self.bot = StandinUser(bot_user_id, bot_name, bot=True)
        self.application_id = application_id
        self.token = token
        self.app_permissions = app_permissions
        self.roles: dict[int, StandinRole] = {
            guild_id: StandinRole(guild_id, "@everyone", everyone_permissions, 0)
        }
        for role in roles:
            r = role if isinstance(role, StandinRole) else StandinRole(role)
            self.roles[r.id] = r
        self.users: dict[int, StandinUser] = {self.bot.id: self.bot}
        for user in users:
            u = user if isinstance(user, StandinUser) else StandinUser(user)
            self.users[u.id] = u
        self._dm_channels: dict[int, int] = {}
        #: public threads the bot created: thread id -> (parent channel id, name)
        self.threads: dict[int, tuple[int, str]] = {}

    def thread_payload(self, thread_id: int) -> JSON:
        """Public thread channel object (type 11) of a thread the bot created."""
        parent, name = self.threads[thread_id]
        return {"id": str(thread_id), "type": 11, "guild_id": str(self.guild_id),
                "parent_id": str(parent), "owner_id": str(self.bot.id), "name": name,
                "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
                "member_count": 1, "flags": 0,
                "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                    "archive_timestamp": TIMESTAMP, "locked": False}}

    def user(self, user_id: int) -> StandinUser:
        """Return the user, creating a role-less member on first use of an unknown id."""
        if user_id not in self.users:
            self.users[user_id] = StandinUser(user_id)
        return self.users[user_id]

    def user_payload(self, user_id: int) -> JSON:
        """Discord user object."""
        u = self.user(user_id)
        return {"id": str(u.id), "username": u.name, "global_name": u.name, "discriminator": "0",
                "avatar": None, "bot": u.bot, "public_flags": 0}

    def permissions_for(self, role_ids: Iterable[int]) -> int:
        """Guild-level permissions of a member with ``role_ids`` (plus @everyone)."""
        perms = self.roles[self.guild_id].permissions
        for rid in role_ids:
            perms |= self.roles[rid].permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def member_payload(
        self, user_id: int, role_ids: Iterable[int] | None = None, *, with_user: bool = True,
        with_permissions: bool = False,
    ) -> JSON:
        """Guild member object; ``role_ids`` overrides the user's configured roles."""
        roles = list(self.user(user_id).role_ids if role_ids is None else role_ids)
        unknown = [r for r in roles if r not in self.roles]
        if unknown:
            raise ValueError(f"role ids {unknown} are not guild roles; pass them in roles=[...]")
        data: JSON = {"roles": [str(r) for r in roles], "nick": None, "joined_at": TIMESTAMP,
                      "deaf": False, "mute": False, "flags": 0, "pending": False}
        if with_user:
            data["user"] = self.user_payload(user_id)
        if with_permissions:
            data["permissions"] = str(self.permissions_for(roles))
        return data

    def role_payload(self, role: StandinRole) -> JSON:
        """Discord role object."""
        return {"id": str(role.id), "name": role.name, "permissions": str(role.permissions),
                "position": role.position, "color": 0, "hoist": False, "managed": False,
                "mentionable": True, "flags": 0}

    def channel_payload(self, channel_id: int, *, with_permissions: bool = False) -> JSON:
        """Guild text channel (or bot-created thread) object; ``KeyError`` for unknown ones."""
        if channel_id in self.threads:
            data = self.thread_payload(channel_id)
            if with_permissions:
                data["permissions"] = str(self.app_permissions)
            return data
        if channel_id not in self.channel_ids:
            raise KeyError(channel_id)
        data: JSON = {"id": str(channel_id), "type": 0, "guild_id": str(self.guild_id),
                      "name": f"channel-{self.channel_ids.index(channel_id)}",
                      "position": self.channel_ids.index(channel_id), "permission_overwrites": [],
                      "nsfw": False, "topic": None, "last_message_id": None,
                      "rate_limit_per_user": 0, "parent_id": None, "flags": 0}
        if with_permissions:
            data["permissions"] = str(self.app_permissions)
        return data

    def guild_payload(self) -> JSON:
        """Full GUILD_CREATE payload: channels, roles and every member with its roles."""
        members = [self.member_payload(uid) for uid in self.users]
        return {
            "id": str(self.guild_id), "name": self.guild_name, "icon": None, "splash": None,
            "owner_id": str(next(iter(self.users))), "features": [], "unavailable": False,
            "roles": [self.role_payload(r) for r in self.roles.values()], "emojis": [],
            "stickers": [], "channels": [self.channel_payload(c) for c in self.channel_ids],
            "members": members, "member_count": len(members), "large": False, "threads": [],
            "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "joined_at": TIMESTAMP,
            "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
            "preferred_locale": "en-US", "afk_timeout": 300, "system_channel_id": None,
        }

    def application_payload(self) -> JSON:
        """``GET /oauth2/applications/@me`` body."""
        return {"id": str(self.application_id), "name": self.bot.name, "description": "",
                "icon": None, "rpc_origins": [], "bot_public": True,
                "bot_require_code_grant": False, "owner": self.user_payload(self.bot.id),
                "verify_key": "0" * 64, "flags": 0, "team": None, "summary": ""}

    def interaction_payload(
        self, kind: int, data: JSON, *, user_id: int, role_ids: Iterable[int] | None,
        channel_id: int, locale: str = "en-US", message: JSON | None = None,
        dm: bool = False, guild_id: int | None = None,
    ) -> JSON:
        """Full INTERACTION_CREATE ``d``: by default from the stand-in's guild (member with roles
        and permissions).

        ``dm=True`` sends it from the user's DM with the bot (``user`` and a DM channel, no guild,
        no member, ``data.guild_id`` dropped); ``guild_id`` of another guild sends it from there,
        as if the bot had been added to a guild the stand-in does not host (the client knows
        nothing of that guild, so its roles do not resolve).
        """
        payload: JSON = {
            "id": str(next_snowflake()), "application_id": str(self.application_id), "type": kind,
            "data": data, "token": f"itok.{secrets.token_urlsafe(24)}", "version": 1,
            "app_permissions": str(self.app_permissions), "locale": locale,
            "entitlements": [], "attachment_size_limit": 25 * 1024 * 1024,
        }
        if dm:
            dm_channel = self.dm_channel_id(user_id)
            payload["data"] = {k: v for k, v in data.items() if k != "guild_id"}
            payload |= {
                "channel_id": str(dm_channel), "user": self.user_payload(user_id),
                "channel": {"id": str(dm_channel), "type": 1, "last_message_id": None,
                            "flags": 0, "recipients": [self.user_payload(user_id)]},
                "authorizing_integration_owners": {"0": "0"}, "context": 1}
            if message is not None:
                message = {k: v for k, v in message.items() if k != "guild_id"} | {
                    "channel_id": str(dm_channel)}
        else:
            guild = str(guild_id or self.guild_id)
            if "guild_id" in data:
                payload["data"] = data | {"guild_id": guild}
            payload |= {
                "guild_id": guild, "guild": {"id": guild, "locale": "en-US", "features": []},
                "channel_id": str(channel_id),
                "channel": self.channel_payload(channel_id, with_permissions=True) | {
                    "guild_id": guild},
                "member": self.member_payload(user_id, role_ids, with_permissions=True),
                "guild_locale": "en-US", "authorizing_integration_owners": {"0": guild},
                "context": 0}
            if message is not None:
                message = message | {"guild_id": guild}
        if message is not None:
            payload["message"] = message
        return payload

    def dm_channel_id(self, user_id: int) -> int:
        """Id of the user's DM channel with the bot (stable per user)."""
        return self._dm_channels.setdefault(user_id, next_snowflake())


@dataclass
class HeartbeatRecord:
    """One heartbeat (op 1) received from the client."""

    at: float  #: ``time.monotonic()`` when the stand-in received it
    sequence: int | None  #: the ``d`` field (last sequence number the client saw)


@dataclass
class GatewayLog:
    """Everything the client sent over the gateway, plus what the stand-in dispatched."""

    heartbeats: list[HeartbeatRecord] = field(default_factory=list)
    identify: JSON | None = None  #: last IDENTIFY ``d`` payload
    resumes: list[JSON] = field(default_factory=list)
    presence_updates: list[JSON] = field(default_factory=list)
    member_requests: list[JSON] = field(default_factory=list)
    other_ops: list[JSON] = field(default_factory=list)
    dispatched: list[tuple[int, str]] = field(default_factory=list)  #: (seq, event name)
    connections: list[dict[str, str]] = field(default_factory=list)  #: query of each connect
    sequence: int = 0  #: last sequence number sent


class Gateway:
    """Serves the gateway websocket (``GET /`` with upgrade) for one client at a time."""

    def __init__(self, world: World, notifier: Notifier, *, heartbeat_interval: float) -> None:
        self.world = world
        self.notifier = notifier
        self.heartbeat_interval = heartbeat_interval
        self.log = GatewayLog()
        self.url = ""  #: set by the stand-in once the port is known
        self.session_id: str | None = None
        self._ws: web.WebSocketResponse | None = None
        self._ready = False
        self._send_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """True once READY and GUILD_CREATE went out on the current connection."""
        return self._ready and self._ws is not None and not self._ws.closed

    async def _send(self, payload: JSON, *, event: str | None = None) -> int:
        if self._ws is None or self._ws.closed:
            raise RuntimeError("no gateway connection; is the discord client running?")
        async with self._send_lock:
            if event is not None:
                self.log.sequence += 1
                self.log.dispatched.append((self.log.sequence, event))
                payload = {"op": 0, "t": event, "s": self.log.sequence, "d": payload}
            await self._ws.send_str(json.dumps(payload))
            return self.log.sequence

    async def dispatch(self, event: str, data: JSON) -> int:
        """Send a DISPATCH (op 0) event and return its sequence number."""
        return await self._send(data, event=event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for the websocket endpoint."""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=4000)
        self._ws, self._ready = ws, False
        self.log.connections.append(dict(request.query))
        hello = {"heartbeat_interval": int(self.heartbeat_interval * 1000)}
        await self._send({"op": 10, "d": hello})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_message(json.loads(msg.data))
                    await self.notifier.changed()
        finally:
            if self._ws is ws:
                self._ready = False
            await self.notifier.changed()
        return ws

    async def _on_message(self, msg: JSON) -> None:
        op, data = msg.get("op"), msg.get("d")
        if op == 1:
            self.log.heartbeats.append(HeartbeatRecord(time.monotonic(), data))
            await self._send({"op": 11})
        elif op == 2:
            self.log.identify = data
            if data.get("token") != self.world.token:
                log.warning("stand-in gateway: IDENTIFY with wrong token")
                assert self._ws is not None
                await self._ws.close(code=4004, message=b"Authentication failed.")
                return
            await self._identify_ok()
        elif op == 6:
            self.log.resumes.append(data)
            self._ready = True
            await self.dispatch("RESUMED", {})
        elif op == 3:
            self.log.presence_updates.append(data)
        elif op == 8:
            self.log.member_requests.append(data)
            members = [self.world.member_payload(uid) for uid in self.world.users]
            chunk = {"guild_id": str(self.world.guild_id), "members": members, "chunk_index": 0,
                     "chunk_count": 1, "not_found": [], "nonce": data.get("nonce")}
            await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
        else:
            self.log.other_ops.append(msg)

    async def _identify_ok(self) -> None:
        self.session_id = secrets.token_hex(16)
        w = self.world
        bot = w.user_payload(w.bot.id) | {"verified": True, "mfa_enabled": False, "flags": 0}
        await self.dispatch("READY", {
            "v": 10, "user": bot, "session_id": self.session_id, "resume_gateway_url": self.url,
            "guilds": [{"id": str(w.guild_id), "unavailable": True}], "private_channels": [],
            "relationships": [], "application": {"id": str(w.application_id), "flags": 0},
        })
        await self.dispatch("GUILD_CREATE", w.guild_payload())
        self._ready = True

    async def close(self, code: int = 1000) -> None:
        """Close the current connection (the discord.py client should be closed first)."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close(code=code)
        self._ready = False
