"""Set-up of end-to-end bot tests: the Discord stand-in, the exchange stand-in, the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.app import serve
from bot.client import PaperBot
from bot.keeper import BotKeeper
from engine.runtime import Runtime
from engine.workers import JobPool
from tests.forward_helpers import MINUTES, settings_for
from tests.helpers import SAMPLE_DATA
from tests.standins.discord_api import DiscordStandin, StandinRole, StandinUser
from tests.standins.exchange import CandleSeries, ExchangeStandin

TRADER = 900_000_000_000_000_042  # allowed by user id
ROLE_TRADER = 900_000_000_000_000_043  # allowed through the role
VISITOR = 900_000_000_000_000_044  # read commands only
MANAGER = 900_000_000_000_000_045  # stops/closes anyone's runs (manager role)
TRADER_ROLE = 900_000_000_000_000_700
MANAGER_ROLE = 900_000_000_000_000_701
CHANNEL = 900_000_000_000_000_010


@dataclass
class BotEnv:
    """A running service with its stand-ins."""

    ds: DiscordStandin
    ex: ExchangeStandin
    series: CandleSeries
    runtime: Runtime
    keeper: BotKeeper

    @property
    def bot(self) -> PaperBot:
        """The bot connected now (the keeper replaces it after a Discord failure)."""
        return self.keeper.bot


@asynccontextmanager
async def bot_env(tmp_path: Path, *, processes: int = 0, heartbeat: float = 41.25,
                  count: int = 1500, cursor: int = 200, channels: tuple[int, ...] = (),
                  **overrides) -> AsyncIterator[BotEnv]:
    """Everything running: serve() with the real discord.py client against the stand-ins.

    ``overrides`` replace settings (e.g. ``guild_id=None`` for global commands); ``channels``
    are more text channels of the guild besides ``CHANNEL``.
    """
    series = CandleSeries.from_parquet(MINUTES, "BTC/USDT", "1m", count=count, cursor=cursor)
    users = [StandinUser(TRADER), StandinUser(ROLE_TRADER, role_ids=[TRADER_ROLE]),
             StandinUser(VISITOR), StandinUser(MANAGER, role_ids=[MANAGER_ROLE])]
    async with ExchangeStandin([series]) as ex, DiscordStandin(
            users=users, roles=[StandinRole(TRADER_ROLE), StandinRole(MANAGER_ROLE)],
            channel_ids=[CHANNEL, *channels], heartbeat_interval=heartbeat) as ds:
        settings = settings_for(tmp_path, ex, "bybit", **{
            "discord_token": ds.token, "guild_id": ds.world.guild_id,
            "allowed_user_ids": str(TRADER), "allowed_role_ids": str(TRADER_ROLE),
            "manager_role_ids": str(MANAGER_ROLE), "data_dir": SAMPLE_DATA,
            "out_dir": tmp_path / "out", "offline": True, **overrides})
        stop = asyncio.Event()
        started: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_start(runtime: Runtime, keeper: BotKeeper) -> None:
            started.set_result((runtime, keeper))

        task = asyncio.create_task(serve(
            settings, jobs=JobPool(processes), stop=stop,
            client_options={"guild_ready_timeout": 0.05}, on_start=on_start))
        try:
            runtime, keeper = await asyncio.wait_for(asyncio.shield(started), timeout=60)
            await ds.wait_until(keeper.is_ready, timeout=30, what="bot ready")
            yield BotEnv(ds, ex, series, runtime, keeper)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=20)


async def start_run(env: BotEnv, strategy: str = "always_long",
                    params: str = "stop_pct=1 take_pct=0.5", user: int = TRADER,
                    channel: int = CHANNEL, symbol: str = "BTC/USDT", timeframe: str = "1m"):
    """``/forward start`` from ``user``; waits for its ephemeral reply and the run's subscription.

    Returns ``(record, run_id)``; the run's one public message is its "started" alert.
    """
    record = await env.ds.invoke("forward start", {"strategy": strategy, "symbol": symbol,
                                                   "timeframe": timeframe, "params": params},
                                 user_id=user, channel_id=channel)
    await record.wait_done(lambda r: r.final is not None and "started" in r.final.content,
                           timeout=30)
    run_id = record.final.content.split("`")[1]  # "✅ Run `<id>` started: …"
    await env.ex.wait_for_subscription("bybit", f"kline.1.{symbol.replace('/', '')}")
    return record, run_id


def titled(env: BotEnv, channel: int, part: str) -> list:
    """Live channel messages whose first embed title contains ``part``."""
    return [m for m in env.ds.channel_messages(channel) if not m.deleted and m.embeds
            and part in (m.embeds[0].get("title") or "")]
