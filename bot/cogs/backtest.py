"""``/backtest run`` and ``/backtest history``: backtests from a phone.

``run`` has the options of ``paperbot backtest`` (timeframe optional — the strategy's — exchange,
fees, slippage, leverage on a perpetual; ``params`` as ``fast=10 slow=50`` or ``fast=10,
slow=50``). The work runs in the job pool, never on the event loop; progress and errors are
ephemeral, the result is posted for the channel and stored in the backtest history. Candles
that are not cached are offered as a **Fetch candles** button (``bot.fetch``). ``history``
lists the stored backtests (reading: every member) and posts one again, picked from a menu or
by id.
"""

from __future__ import annotations

import re
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot import choices, embeds_backtest
from bot.access import actor, check_place, is_allowed, service_of, trader_only
from bot.errors import reply_error
from bot.fetch import FetchView, missing_embed
from bot.progress import with_progress
from bot.research_buttons import backtest_view
from engine import formatting as fmt
from engine.backtest_request import BacktestRequest
from engine.errors import MissingCandles, ServiceError
from engine.risk.config import check_protect
from engine.service import PaperService
from engine.strategy import ParamError, parse_param_pairs

BPS = app_commands.Range[float, 0.0, 1000.0]


def parse_params(text: str | None) -> dict[str, str]:
    """``"fast=5 slow=20"`` or ``"fast=5, slow=20"`` → dict; a malformed pair is a
    ``ServiceError``."""
    try:
        return parse_param_pairs(" ".join(re.split(r"[\s,;]+", text or "")).strip())
    except ParamError as exc:
        raise ServiceError(str(exc)) from None


def parse_protect(text: str | None) -> dict[str, str]:
    """``"daily_loss_limit_pct=3 cooldown=5"`` → dict, each value checked; a malformed pair,
    an unknown protection or a bad value is a ``ServiceError`` naming ``protect``."""
    return check_protect(text or "", "protect")


def _files(charts: dict[str, Path], csv: Path | None) -> list[discord.File]:
    files = [discord.File(charts[k], filename=name)
             for k, name in embeds_backtest.CHART_NAMES.items() if k in charts]
    if csv is not None:
        files.append(discord.File(csv, filename="trades.csv"))
    return files


async def run_and_post(service: PaperService, interaction: discord.Interaction,
                       request: BacktestRequest) -> None:
    """Run ``request`` (progress in the interaction's ephemeral reply), store it in the
    history and post the result for the channel. ``MissingCandles`` ends in the missing-
    candles answer (with the Fetch button when the user may use it)."""
    try:
        report = await with_progress(
            interaction, lambda update: service.backtest(request, progress=update))
    except MissingCandles as missing:
        can_fetch = is_allowed(service.settings, interaction.user) and not missing.offline

        async def then(again: discord.Interaction) -> None:
            await run_and_post(service, again, request)

        await interaction.edit_original_response(
            content=None, embed=missing_embed(missing, can_fetch),
            view=FetchView(service, missing, then) if can_fetch else None)
        return
    data = report.to_json()
    history_id = await service.record_backtest(request, report, actor(interaction.user), data)
    await interaction.edit_original_response(
        content=f"✅ Backtest done in {report.elapsed_s:.1f} s — results posted below"
                + (f" (backtest #{history_id})." if history_id else "."), embed=None)
    await interaction.followup.send(
        embeds=embeds_backtest.backtest(data, list(report.charts), history_id),
        files=_files(report.charts, report.trades_csv),
        view=backtest_view(report))  # the Monte Carlo button


async def repost(service: PaperService, interaction: discord.Interaction,
                 backtest_id: int) -> None:
    """Post stored backtest ``backtest_id`` again (the interaction is deferred)."""
    stored = await service.stored_backtest(backtest_id)
    try:
        charts, csv, rerun = await with_progress(
            interaction, lambda update: service.backtest_files(stored, progress=update))
    except MissingCandles as missing:
        raise ServiceError(f"the charts of backtest #{backtest_id} are gone and its "
                           f"{missing.symbol} {missing.timeframe} candles are no longer "
                           "stored; run it again with /backtest run") from None
    note = "charts drawn again from the stored request" if rerun else None
    await interaction.followup.send(
        embeds=embeds_backtest.backtest(stored.result, list(charts), stored.id, note),
        files=_files(charts, csv))


class HistorySelect(discord.ui.DynamicItem[discord.ui.Select], template=r"pb:bthist"):
    """The "post again" menu under ``/backtest history`` (survives a redeploy)."""

    def __init__(self, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(discord.ui.Select(
            custom_id="pb:bthist", placeholder="Post a backtest again…",
            options=options or [discord.SelectOption(label="-", value="0")]))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str]) -> HistorySelect:
        return cls()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Picks only from a configured guild (answered and audited otherwise)."""
        return await check_place(interaction, service_of(interaction))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values") or ["0"]  # type: ignore[union-attr]
        await interaction.response.defer(thinking=True)
        try:
            await repost(service_of(interaction), interaction, int(values[0]))
        except ServiceError as exc:
            await reply_error(interaction, exc)


@app_commands.guild_only()
class BacktestCog(commands.GroupCog, group_name="backtest",
                  group_description="Backtests: run one, or post a past one again"):
    """Backtests from Discord; the work runs in the job pool, never on the event loop."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        super().__init__()

    @app_commands.command(name="run",
                          description="Backtest a strategy on stored candles: metrics + charts")
    @app_commands.describe(strategy="strategy name", symbol="e.g. BTC/USDT",
                           timeframe="base timeframe (default: the strategy's)",
                           start="first day, YYYY-MM-DD (UTC)",
                           end="last day, YYYY-MM-DD (UTC), included",
                           exchange="exchange (default binance)",
                           balance="starting balance in quote currency (default 10,000)",
                           fee_bps="taker fee, basis points (default 10 = 0.1 %)",
                           maker_fee_bps="maker fee (take-profit fills), basis points",
                           slippage_bps="slippage on market fills and stops, basis points",
                           params="strategy parameters, e.g. fast=10 slow=50",
                           protect="risk guards, e.g. daily_loss_limit_pct=3 cooldown=5",
                           leverage="perpetuals: notional / margin, 1 (default) to the "
                                    "symbol's maximum; spot takes 1 only")
    @app_commands.autocomplete(strategy=choices.strategies, symbol=choices.symbols)
    @app_commands.choices(timeframe=choices.TIMEFRAMES)
    @trader_only("/backtest run")
    async def run(self, interaction: discord.Interaction, strategy: str, symbol: str,
                  timeframe: str | None = None, start: str | None = None,
                  end: str | None = None, exchange: str | None = None,
                  balance: app_commands.Range[float, 1.0, 1e12] | None = None,
                  fee_bps: BPS | None = None, maker_fee_bps: BPS | None = None,
                  slippage_bps: BPS | None = None, params: str | None = None,
                  protect: str | None = None, leverage: float | None = None) -> None:
        request = BacktestRequest(strategy=strategy, symbol=symbol, timeframe=timeframe,
                                  exchange=exchange, start=start, end=end, balance=balance,
                                  fee_bps=fee_bps, maker_fee_bps=maker_fee_bps,
                                  slippage_bps=slippage_bps, params=parse_params(params),
                                  protect=parse_protect(protect), fetch_missing=False,
                                  leverage=leverage)
        self.service.check_backtest(request)  # bad input: an ephemeral answer at once
        # the "thinking…" reply is ephemeral: progress and errors only bother the invoker
        await interaction.response.defer(ephemeral=True, thinking=True)
        await run_and_post(self.service, interaction, request)

    @app_commands.command(name="history",
                          description="Past backtests; pick one (or give its id) to post it again")
    @app_commands.describe(backtest_id="a backtest number from the list, to post it again")
    @app_commands.rename(backtest_id="id")
    async def history(self, interaction: discord.Interaction,
                      backtest_id: app_commands.Range[int, 1] | None = None) -> None:
        if backtest_id is not None:
            await self.service.stored_backtest(backtest_id)  # unknown id: answered at once
            await interaction.response.defer(thinking=True)
            await repost(self.service, interaction, backtest_id)
            return
        items, total = await self.service.backtest_history(10)
        view = discord.ui.View(timeout=None)
        if items:
            view.add_item(HistorySelect([discord.SelectOption(
                label=f"#{b.id} {b.strategy} {b.symbol} {b.timeframe}"[:100],
                description=_option_text(b.result)[:100], value=str(b.id)) for b in items]))
        await interaction.response.send_message(
            embed=embeds_backtest.history(items, total), **({"view": view} if items else {}))


def _option_text(result: dict) -> str:
    m = result.get("metrics", {})
    return (f"{fmt.iso(result.get('start'))[:10]} → {fmt.iso(result.get('end'))[:10]} · "
            f"{fmt.pct(m.get('total_return_pct'))} · {m.get('num_trades', 0)} trades")
