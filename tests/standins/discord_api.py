"""Local stand-in for the Discord API (REST + gateway websocket) for a *real* discord.py client.

Typical use in an end-to-end test::

    async with DiscordStandin(users=[StandinUser(42, role_ids=[7])], roles=[StandinRole(7)]) as ds:
        bot = MyBot(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        async with ds.connect(bot):                       # logs in, waits for on_ready (bounded)
            record = await ds.invoke("forward start", {"symbol": "BTC/USDT"}, user_id=42)
            await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds))
            assert not record.expired

Entering the stand-in patches ``discord.http.Route.BASE``,
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` and ``discord.asset.Asset.BASE`` (restored on
exit), so nothing ever talks to discord.com. Pass ``guild_ready_timeout`` (e.g. 0.05) to the
client: discord.py otherwise waits 2 s after the last GUILD_CREATE before firing ``on_ready``.
Everything that waits takes a ``timeout`` and raises :class:`StandinTimeout` when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import discord
import yarl
from aiohttp import web

from .discord_gateway import (
    ALL_PERMISSIONS,
    DEFAULT_PERMISSIONS,
    JSON,
    Gateway,
    GatewayLog,
    HeartbeatRecord,
    Notifier,
    StandinRole,
    StandinTimeout,
    StandinUser,
    T,
    World,
    next_snowflake,
)
from .discord_records import (
    AttachmentRecord,
    ChannelRef,
    InteractionExpiredError,
    InteractionRecord,
    MessageRecord,
    Options,
    ResponseEvent,
    RoleRef,
    UserRef,
    command_data,
)
from .discord_rest import RestApi

__all__ = [
    "AttachmentRecord", "ChannelRef", "DiscordStandin", "GatewayLog", "HeartbeatRecord",
    "InteractionExpiredError", "InteractionRecord", "MessageRecord", "ResponseEvent", "RoleRef",
    "StandinRole", "StandinTimeout", "StandinUser", "UserRef",
]


class DiscordStandin:
    """An aiohttp server on 127.0.0.1 (random port) speaking enough Discord for discord.py 2.7."""

    def __init__(
        self,
        *,
        guild_id: int = 900_000_000_000_000_001,
        channel_ids: Iterable[int] = (900_000_000_000_000_010,),
        users: Iterable[StandinUser | int] = (900_000_000_000_000_042,),
        roles: Iterable[StandinRole | int] = (),
        guild_name: str = "paperbot-test",
        bot_user_id: int = 900_000_000_000_000_100,
        bot_name: str = "paperbot",
        application_id: int | None = None,
        token: str = "standin.bot.token",
        heartbeat_interval: float = 41.25,
        interaction_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        everyone_permissions: int = DEFAULT_PERMISSIONS,
        app_permissions: int = ALL_PERMISSIONS,
        patch: bool = True,
    ) -> None:
        """Configure the guild; ``heartbeat_interval`` is in seconds (HELLO sends milliseconds)."""
        self.world = World(
            guild_id=guild_id, guild_name=guild_name, channel_ids=channel_ids, users=users,
            roles=roles, bot_user_id=bot_user_id, bot_name=bot_name,
            application_id=application_id or bot_user_id, token=token,
            everyone_permissions=everyone_permissions, app_permissions=app_permissions)
        humans = [u for u in self.world.users.values() if not u.bot]
        self.default_user_id = humans[0].id if humans else 900_000_000_000_000_042
        self.notifier = Notifier()
        self.gateway = Gateway(self.world, self.notifier, heartbeat_interval=heartbeat_interval)
        self.rest = RestApi(self.world, self.notifier, token_lifetime=token_lifetime)
        self.interaction_deadline = interaction_deadline
        #: every interaction dispatched, in order
        self.records: list[InteractionRecord] = []
        self._patch = patch
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._started = False
        self._exit = contextlib.ExitStack()
        self._fallback_ids: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def token(self) -> str:
        """The bot token the stand-in accepts (REST ``Authorization`` and gateway IDENTIFY)."""
        return self.world.token

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{discord.http.INTERNAL_API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY``."""
        return f"ws://127.0.0.1:{self._port}/"

    @property
    def cdn_url(self) -> str:
        """Value for ``discord.asset.Asset.BASE`` (attachment downloads are served here)."""
        return f"{self.base_url}/cdn"

    async def start(self) -> None:
        """Start serving on a free port (and patch discord.py unless ``patch=False``)."""
        self._started = True
        await self._serve(port=0)
        self.gateway.url = self.rest.gateway_url = self.gateway_url
        self.rest.cdn_url = self.cdn_url
        if self._patch:
            self._exit.enter_context(self.patch_discord())

    async def _serve(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024,
                              middlewares=[self.rest.middleware])
        app.router.add_get("/", self.gateway.handle)
        app.add_routes(self.rest.routes())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    # -- outages ------------------------------------------------------------------------------
    @property
    def down(self) -> bool:
        """True between ``go_down`` and ``come_back``."""
        return self._runner is None and self._started

    async def go_down(self) -> None:
        """A Discord outage: drop the gateway connection and stop listening (connections to the
        port are refused) until ``come_back``; discord.py stays pointed here."""
        await self.gateway.close(code=1011)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        """End an outage: listen again on the same port."""
        if self._runner is None and self._started:
            await self._serve(port=self._port)

    async def stop(self) -> None:
        """Close the gateway socket, stop the server and undo the patches."""
        try:
            await self.gateway.close()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
        finally:
            self._exit.close()

    async def __aenter__(self) -> DiscordStandin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base, default gateway and CDN base here; restore on exit."""
        route, ws, asset = discord.http.Route, discord.gateway.DiscordWebSocket, discord.asset.Asset
        saved = (route.BASE, ws.DEFAULT_GATEWAY, asset.BASE)
        route.BASE, ws.DEFAULT_GATEWAY, asset.BASE = (
            self.api_url, yarl.URL(self.gateway_url), self.cdn_url)
        try:
            yield
        finally:
            route.BASE, ws.DEFAULT_GATEWAY, asset.BASE = saved

    @contextlib.asynccontextmanager
    async def connect(
        self, client: discord.Client, *, token: str | None = None, ready_timeout: float = 5.0,
        close_timeout: float = 5.0,
    ) -> AsyncIterator[discord.Client]:
        """Run ``client.start(token)`` in a task, wait for on_ready, and close it cleanly on exit.

        Errors from the client task (bad token, crash) are re-raised here.
        """
        task = asyncio.create_task(client.start(token or self.token), name="standin-discord-client")
        try:
            await self.notifier.wait_for(lambda: task.done() or client.is_ready(),
                                         timeout=ready_timeout, what="the client's on_ready")
            if task.done():
                await task
                raise RuntimeError("discord client stopped before it became ready")
            yield client
        except BaseException:
            await self._stop_client(client, task, close_timeout)
            raise
        failure = await self._stop_client(client, task, close_timeout)
        if failure is not None:
            raise failure

    @staticmethod
    async def _stop_client(
        client: discord.Client, task: asyncio.Task[None], timeout: float
    ) -> BaseException | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.close(), timeout)
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return StandinTimeout(f"discord client did not stop within {timeout}s")
        return None if task.cancelled() else task.exception()

    # -- interactions -------------------------------------------------------------------------
    async def invoke(
        self, name: str, options: Options = None, *, user_id: int | None = None,
        role_ids: Iterable[int] | None = None, channel_id: int | None = None,
        guild_command: bool | None = None, locale: str = "en-US", dm: bool = False,
        guild_id: int | None = None,
    ) -> InteractionRecord:
        """Dispatch a chat-input command (type 2) and return its live :class:`InteractionRecord`.

        ``name`` may contain a subcommand path (``"forward start"``, ``"admin risk set"``).
        ``options`` maps option names to values; types come from the synced command schema when
        available, else from the Python type (bool/int/float/str, :class:`UserRef`,
        :class:`ChannelRef`, :class:`RoleRef`). A list of raw option dicts is sent unchanged.
        ``role_ids`` overrides the member's roles for this interaction only;
        ``guild_command=True`` sets ``data.guild_id`` for guild commands that were never synced.
        ``dm=True`` sends it from the user's DM with the bot, ``guild_id`` from another guild
        (see ``World.interaction_payload``); the same keywords exist on autocomplete and click.
        """
        data = self._command_data(name, options, focused=None, guild_command=guild_command)
        record = self._record(2, data, name, user_id, role_ids, channel_id, locale,
                              dm=dm, guild_id=guild_id)
        return await self._dispatch(record)

    async def autocomplete(
        self, name: str, options: Options = None, *, focused: str, user_id: int | None = None,
        role_ids: Iterable[int] | None = None, channel_id: int | None = None,
        timeout: float = 3.0, dm: bool = False, guild_id: int | None = None,
    ) -> list[JSON]:
        """Dispatch an autocomplete interaction (type 4) and return the bot's choices."""
        data = self._command_data(name, options, focused=focused, guild_command=None)
        record = self._record(4, data, name, user_id, role_ids, channel_id, "en-US",
                              dm=dm, guild_id=guild_id)
        await self._dispatch(record)
        await record.wait_initial(timeout)
        if record.callback_type != 8 or record.choices is None:
            raise AssertionError(f"expected an autocomplete result: {record.describe()}")
        return record.choices

    async def click(
        self, target: MessageRecord | int | str, custom_id: str | None = None, *,
        user_id: int | None = None, role_ids: Iterable[int] | None = None,
        component_type: int = 2, values: list[str] | None = None, dm: bool = False,
        guild_id: int | None = None,
    ) -> InteractionRecord:
        """Dispatch a component interaction (type 3) for a message the bot posted.

        ``target`` is a :class:`MessageRecord`, a message id, or just the ``custom_id`` (then the
        newest live message carrying it is used). Defaults to a button (component_type 2).
        """
        if isinstance(target, str):
            custom_id = target
            found = [m for m in self.rest.messages.values()
                     if not m.deleted and target in m.custom_ids]
            if not found:
                raise ValueError(f"no message with a component {target!r}")
            message = max(found, key=lambda m: m.created_at)
        else:
            message = self.rest.messages[target] if isinstance(target, int) else target
        if custom_id is None or custom_id not in message.custom_ids:
            raise ValueError(f"{custom_id!r} not in the message's components {message.custom_ids}")
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        record = self._record(3, data, custom_id, user_id, role_ids, message.channel_id, "en-US",
                              message.to_payload(self.world, self.cdn_url), dm=dm,
                              guild_id=guild_id)
        return await self._dispatch(record)

    async def dispatch(self, event: str, data: JSON) -> int:
        """Send any raw gateway DISPATCH event to the client; returns its sequence number."""
        return await self.gateway.dispatch(event, data)

    def _command_data(
        self, name: str, options: Options, *, focused: str | None, guild_command: bool | None
    ) -> JSON:
        root = name.split()[0]
        command = self.rest.find_command(root, self.world.guild_id)
        command_id = command["id"] if command else self._fallback_ids.setdefault(
            root, str(next_snowflake()))
        return command_data(self.world, name, options, command=command, command_id=command_id,
                            focused=focused, guild_command=guild_command)

    def _record(
        self, kind: int, data: JSON, label: str, user_id: int | None,
        role_ids: Iterable[int] | None, channel_id: int | None, locale: str,
        message: JSON | None = None, *, dm: bool = False, guild_id: int | None = None,
    ) -> InteractionRecord:
        payload = self.world.interaction_payload(
            kind, data, user_id=user_id or self.default_user_id, role_ids=role_ids,
            channel_id=channel_id or self.world.channel_ids[0], locale=locale, message=message,
            dm=dm, guild_id=guild_id)
        return InteractionRecord(payload, self.notifier, deadline=self.interaction_deadline,
                                 label=label)

    async def _dispatch(self, record: InteractionRecord) -> InteractionRecord:
        if not self.gateway.ready:
            raise RuntimeError("the discord client is not connected (use `async with ds.connect`)")
        self.rest.register(record)
        self.records.append(record)
        record.dispatched_at = time.monotonic()
        await self.gateway.dispatch("INTERACTION_CREATE", record.payload)
        return record

    async def wait_until(
        self, check: Callable[[], T | None], timeout: float = 5.0, what: str = "a condition"
    ) -> T:
        """Bounded wait for any condition (e.g. bot-side state); re-checked every 50 ms."""
        return await self.notifier.wait_for(check, timeout=timeout, what=what)

    # -- channel messages, commands, gateway records ------------------------------------------
    def channel_messages(self, channel_id: int) -> list[MessageRecord]:
        """Messages the bot posted to ``channel_id`` through channel routes (not interactions)."""
        return list(self.rest.channel_log[channel_id])

    async def wait_for_message(
        self, channel_id: int, predicate: Callable[[MessageRecord], bool] | None = None,
        timeout: float = 5.0,
    ) -> MessageRecord:
        """First live channel message (already posted or future) matching ``predicate``."""
        if channel_id not in self.rest.channel_log:
            raise ValueError(f"unknown channel {channel_id}")
        log_ = self.rest.channel_log[channel_id]

        def check() -> MessageRecord | None:
            return next((m for m in log_ if not m.deleted and (predicate is None or predicate(m))),
                        None)

        return await self.notifier.wait_for(
            check, timeout=timeout,
            what=lambda: f"a matching message in {channel_id}; have {[m.content for m in log_]}")

    def commands(self, guild_id: int | None = None) -> dict[str, JSON]:
        """Synced commands by name for a scope (``None`` = global)."""
        return {c["name"]: c for c in self.rest.commands.get(guild_id, [])}

    @property
    def guild_commands(self) -> dict[str, JSON]:
        """Commands synced to the stand-in's guild, by name."""
        return self.commands(self.world.guild_id)

    @property
    def unknown_routes(self) -> list[str]:
        """``"METHOD /path?query"`` of every request no route handled (answered 404)."""
        return self.rest.unknown_routes

    @property
    def gateway_log(self) -> GatewayLog:
        """Heartbeats, IDENTIFY payload, sequence numbers and dispatched events."""
        return self.gateway.log

    @property
    def heartbeats(self) -> list[HeartbeatRecord]:
        """Heartbeats received so far (monotonic receive time + the client's sequence)."""
        return self.gateway.log.heartbeats

    def heartbeat_gaps(self) -> list[float]:
        """Seconds between consecutive heartbeats."""
        beats = self.heartbeats
        return [b.at - a.at for a, b in itertools.pairwise(beats)]

    async def wait_for_heartbeats(self, count: int, timeout: float = 5.0) -> list[HeartbeatRecord]:
        """Wait until at least ``count`` heartbeats arrived; return them all."""
        await self.notifier.wait_for(
            lambda: len(self.heartbeats) >= count, timeout=timeout,
            what=lambda: f"{count} heartbeats (have {len(self.heartbeats)})")
        return list(self.heartbeats)
