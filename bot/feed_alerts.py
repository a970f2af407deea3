"""Feed alerts once per exchange connection, naming the runs affected.

Every run on a dropped websocket reports ``FeedLost`` (and later ``FeedRestored``); posting each
would put one pair of messages per run in the channel. Runs of one exchange and market type
share one connection, so the first report of an outage posts one message and the reports of
the other runs edit it to add their names; the same goes for the restored message. A report
that comes after its outage was restored (or more than ``MERGE_MS`` after it began) starts a
new outage. The state lives in memory: after a restart the next outage starts afresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.embeds import BLUE, ORANGE
from engine import formatting as fmt
from engine.events import FeedLost, FeedRestored
from engine.store.store import RunRecord

#: Reports of one connection further apart than this are different outages (ms).
MERGE_MS = 10 * 60_000


@dataclass
class Outage:
    """One outage of one connection: its two messages and the runs each names."""

    started: int
    detail: str
    lost: discord.Message | None = None
    lost_runs: dict[str, str] = field(default_factory=dict)  # run id -> description
    restored: discord.Message | None = None
    restored_runs: dict[str, str] = field(default_factory=dict)
    backfilled: dict[str, int] = field(default_factory=dict)


def connection(exchange: str, run: RunRecord | None) -> str:
    """``"bybit spot"``: what one websocket connection serves."""
    market = run.market_type if run is not None else ""
    return f"{exchange} {market}".strip()


def describe(run_id: str, run: RunRecord | None) -> str:
    """``"`3fa9c1` sma_cross BTC/USDT 1m"``."""
    if run is None:
        return f"`{run_id}`"
    return f"`{run_id}` {run.strategy} {run.symbol} {run.timeframe}"


def lost_embed(name: str, outage: Outage) -> discord.Embed:
    """One feed-lost alert for every run of the connection."""
    n = len(outage.lost_runs)
    embed = discord.Embed(title=f"⚠️ Feed lost · {name}", colour=ORANGE,
                          description=f"{outage.detail[:500]}\n**{n} run{'s' * (n != 1)} "
                                      "waiting:**\n" + "\n".join(outage.lost_runs.values()))
    embed.set_footer(text=f"since {fmt.when(outage.started)} · missed candles are backfilled "
                          "when it is back")
    return embed


def restored_embed(name: str, outage: Outage) -> discord.Embed:
    """One feed-restored alert for every run of the connection."""
    lines = [f"{text} · {outage.backfilled.get(run_id, 0)} candles backfilled"
             for run_id, text in outage.restored_runs.items()]
    embed = discord.Embed(title=f"🔌 Feed restored · {name}", colour=BLUE,
                          description="\n".join(lines)[:4000])
    if outage.lost is not None:
        embed.set_footer(text=f"down since {fmt.when(outage.started)}")
    return embed


class FeedAlerts:
    """Posts and edits the feed messages of each (channel, connection)."""

    def __init__(self) -> None:
        self.outages: dict[tuple[int, str], Outage] = {}

    async def send(self, channel: Any, event: FeedLost | FeedRestored,
                   run: RunRecord | None) -> discord.Message:
        """Post or update the message of ``event``'s outage in ``channel``; returns it."""
        name = connection(event.exchange, run)
        key = (channel.id, name)
        outage = self.outages.get(key)
        now = int(time.time() * 1000)
        if isinstance(event, FeedLost):
            if outage is None or outage.restored is not None or now - outage.started > MERGE_MS:
                outage = self.outages[key] = Outage(event.ts, event.detail)
            outage.lost_runs[event.run_id] = describe(event.run_id, run)
            if outage.lost is None:
                outage.lost = await channel.send(embed=lost_embed(name, outage))
            else:
                outage.lost = await outage.lost.edit(embed=lost_embed(name, outage))
            return outage.lost
        if outage is None or event.run_id in outage.restored_runs or \
                now - outage.started > MERGE_MS:
            outage = self.outages[key] = Outage(event.ts, "")
        outage.restored_runs[event.run_id] = describe(event.run_id, run)
        outage.backfilled[event.run_id] = event.backfilled
        if outage.restored is None:
            outage.restored = await channel.send(embed=restored_embed(name, outage))
        else:
            outage.restored = await outage.restored.edit(embed=restored_embed(name, outage))
        return outage.restored
