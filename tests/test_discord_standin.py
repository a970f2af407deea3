"""The Discord stand-in works end to end with a real discord.py client and CommandTree."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.standins.discord_api import (
    DiscordStandin,
    MessageRecord,
    StandinRole,
    StandinUser,
)

GUILD_ID = 910_000_000_000_000_001
MAIN_CHANNEL = 910_000_000_000_000_011
ALERTS_CHANNEL = 910_000_000_000_000_012
TRADER = StandinRole(910_000_000_000_000_021, "trader")
ADMIN = StandinRole(910_000_000_000_000_022, "admin", permissions=1 << 3)
ALICE = StandinUser(910_000_000_000_000_031, "alice", role_ids=[TRADER.id])
BOB = StandinUser(910_000_000_000_000_032, "bob")
HEARTBEAT = 0.25
STRATEGIES = ["sma_cross", "rsi_revert", "breakout", "sma_ribbon"]


def tiny_png(red: int, green: int, blue: int) -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes([0, red, green, blue]))
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


PNG_EQUITY = tiny_png(0, 200, 0)
PNG_DRAWDOWN = tiny_png(200, 0, 0)


class ConfirmView(discord.ui.View):
    """A button view like the bot's trade confirmations."""

    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.green, custom_id="trade:confirm")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]
                      ) -> None:
        await interaction.response.edit_message(content=f"confirmed by {interaction.user.name}",
                                                view=None)
        self.stop()


class PanelView(discord.ui.View):
    """Deferred-update button: edits the panel, then posts/edits/deletes a follow-up."""

    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Refresh", custom_id="panel:refresh")
    async def refresh(self, interaction: discord.Interaction, button: discord.ui.Button[PanelView]
                      ) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content=f"refreshed by {interaction.user.name}")
        extra = await interaction.followup.send("detail…", ephemeral=True, wait=True)
        await extra.edit(content="details")
        await extra.delete()


class StandinBot(discord.Client):
    """A minimal bot whose slash commands exercise every stand-in feature."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild_obj = discord.Object(GUILD_ID)
        self.errors: list[BaseException] = []
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]
        _install_commands(self)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.guild_obj)

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error)


def _install_commands(bot: StandinBot) -> None:
    tree, guild = bot.tree, bot.guild_obj

    @tree.command(name="quote", description="Quote a symbol", guild=guild)
    async def quote(interaction: discord.Interaction, symbol: str, qty: int = 1,
                    price: float = 0.0, live: bool = False) -> None:
        assert isinstance(interaction.user, discord.Member)
        roles = sorted(r.name for r in interaction.user.roles)
        embed = discord.Embed(title=f"Quote {symbol}", description=f"roles={roles}")
        embed.add_field(name="qty", value=repr(qty)).add_field(name="price", value=repr(price))
        await interaction.response.send_message(f"{symbol} live={live!r}", embed=embed)

    @tree.command(name="chart", description="Deferred chart", guild=guild)
    async def chart(interaction: discord.Interaction, symbol: str) -> None:
        await interaction.response.defer(thinking=True)
        await asyncio.sleep(0.2)
        files = [discord.File(io.BytesIO(PNG_EQUITY), "equity.png"),
                 discord.File(io.BytesIO(PNG_DRAWDOWN), "drawdown.png")]
        embed = discord.Embed(title=f"Backtest {symbol}").set_image(url="attachment://equity.png")
        await interaction.edit_original_response(embed=embed, attachments=files)

    @tree.command(name="secret", description="Ephemeral", guild=guild)
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you can see this", ephemeral=True)

    @tree.command(name="panel", description="Ephemeral panel with a button", guild=guild)
    async def panel(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("panel", view=PanelView(), ephemeral=True)

    @tree.command(name="announce", description="Channel message + follow-up", guild=guild)
    async def announce(interaction: discord.Interaction, where: discord.TextChannel,
                       text: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await where.send(text, embed=discord.Embed(title="Alert"),
                         file=discord.File(io.BytesIO(PNG_EQUITY), "alert.png"))
        await interaction.followup.send(f"posted to #{where.name}", ephemeral=True)

    @tree.command(name="slow", description="Blocks the event loop like a naive backtest",
                  guild=guild)
    async def slow(interaction: discord.Interaction) -> None:
        time.sleep(3.1)  # deliberately blocking: the stand-in must notice the missed deadline
        try:
            await interaction.response.send_message("too late")
        except discord.NotFound as exc:
            bot.errors.append(exc)

    @tree.command(name="backtest", description="Long work off the event loop", guild=guild)
    async def backtest(interaction: discord.Interaction, seconds: float) -> None:
        await interaction.response.defer()
        await asyncio.to_thread(time.sleep, seconds)
        await interaction.edit_original_response(content="backtest done")

    forward = app_commands.Group(name="forward", description="Forward tests", guild_ids=[GUILD_ID])

    @forward.command(name="start", description="Start a forward test")
    async def forward_start(interaction: discord.Interaction, symbol: str, strategy: str) -> None:
        await interaction.response.send_message(f"started {strategy} on {symbol}")

    @forward_start.autocomplete("strategy")
    async def strategy_choices(interaction: discord.Interaction, current: str
                               ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in STRATEGIES if s.startswith(current)]

    @forward.command(name="stop", description="Stop")
    async def forward_stop(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("stopped")

    admin = app_commands.Group(name="admin", description="Admin", guild_ids=[GUILD_ID])
    risk = app_commands.Group(name="risk", description="Risk limits", parent=admin)

    @risk.command(name="set", description="Set the risk limit")
    async def risk_set(interaction: discord.Interaction, limit: float, who: discord.Member
                       ) -> None:
        caller = interaction.user
        assert isinstance(caller, discord.Member)
        allowed = caller.guild_permissions.administrator
        await interaction.response.send_message(
            f"limit={limit!r} for {who.name} allowed={allowed}", ephemeral=not allowed)

    tree.add_command(forward)
    tree.add_command(admin)


@pytest.fixture
async def env() -> AsyncIterator[tuple[DiscordStandin, StandinBot]]:
    async with DiscordStandin(
        guild_id=GUILD_ID, channel_ids=[MAIN_CHANNEL, ALERTS_CHANNEL], users=[ALICE, BOB],
        roles=[TRADER, ADMIN], heartbeat_interval=HEARTBEAT,
    ) as ds:
        bot = StandinBot()
        async with ds.connect(bot, ready_timeout=5.0):
            yield ds, bot
        assert ds.unknown_routes == []


async def test_ready_sync_and_slash_command_with_embed(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, bot = env
    assert bot.user is not None and bot.user.id == ds.world.bot.id
    assert set(ds.guild_commands) == {"quote", "chart", "secret", "panel", "announce", "slow",
                                      "backtest", "forward", "admin"}
    assert ds.gateway_log.identify is not None and ds.gateway_log.identify["token"] == ds.token
    record = await ds.invoke("quote", {"symbol": "BTC/USDT", "qty": 3, "price": 2.5, "live": True},
                             user_id=ALICE.id)
    await record.wait_done(timeout=3.0)
    assert not record.expired and record.callback_type == 4 and not record.ephemeral
    assert record.payload["data"]["id"] == ds.guild_commands["quote"]["id"]
    assert record.initial is not None and record.initial.elapsed < 1.0
    reply = record.final
    assert reply is not None and reply.content == "BTC/USDT live=True"
    assert reply.embeds[0]["title"] == "Quote BTC/USDT"
    assert reply.embeds[0]["description"] == "roles=['@everyone', 'trader']"
    assert [f["value"] for f in reply.embeds[0]["fields"]] == ["3", "2.5"]
    assert bot.errors == []


async def test_deferred_edit_with_embed_and_two_pngs(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, _ = env
    record = await ds.invoke("chart", {"symbol": "ETH/USDT"})
    await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds), timeout=3.0)
    assert record.callback_type == 5 and record.deferred and not record.expired
    edit = next(e for e in record.events if e.kind == "edit_original")
    assert edit.elapsed >= 0.2 and record.initial is not None and record.initial.elapsed < 0.2
    final = record.final
    assert final is not None and final is record.original and not final.loading
    assert final.embeds[0]["title"] == "Backtest ETH/USDT"
    assert [a.filename for a in final.attachments] == ["equity.png", "drawdown.png"]
    assert final.attachment("equity.png").data == PNG_EQUITY
    assert final.attachment("drawdown.png").data == PNG_DRAWDOWN
    assert [a.filename for a in edit.attachments] == ["equity.png", "drawdown.png"]


async def test_ephemeral_reply(env: tuple[DiscordStandin, StandinBot]) -> None:
    ds, _ = env
    record = await ds.invoke("secret", user_id=BOB.id)
    await record.wait_done(timeout=3.0)
    assert record.ephemeral and record.final is not None and record.final.ephemeral
    assert record.initial is not None and record.initial.data["flags"] & 64
    assert record.final.content == "only you can see this"


async def test_subcommands_groups_and_member_options(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, bot = env
    started = await ds.invoke("forward start", {"symbol": "SOL/USDT", "strategy": "breakout"})
    assert started.payload["data"]["options"][0]["type"] == 1
    await started.wait_done(timeout=3.0)
    assert started.final is not None and started.final.content == "started breakout on SOL/USDT"

    as_bob = await ds.invoke("admin risk set", {"limit": 0.5, "who": ALICE.id}, user_id=BOB.id)
    as_admin = await ds.invoke("admin risk set", {"limit": 0.25, "who": BOB.id},
                               user_id=BOB.id, role_ids=[ADMIN.id])
    for record in (as_bob, as_admin):
        await record.wait_done(timeout=3.0)
    group = as_bob.payload["data"]["options"][0]
    assert (group["type"], group["name"], group["options"][0]["type"]) == (2, "risk", 1)
    assert as_bob.final is not None and as_bob.final.content == "limit=0.5 for alice allowed=False"
    assert as_bob.ephemeral
    assert as_admin.final is not None
    assert as_admin.final.content == "limit=0.25 for bob allowed=True"
    assert bot.errors == []


async def test_autocomplete_returns_choices(env: tuple[DiscordStandin, StandinBot]) -> None:
    ds, _ = env
    choices = await ds.autocomplete("forward start", {"symbol": "BTC/USDT", "strategy": "sma"},
                                    focused="strategy")
    assert choices == [{"name": "sma_cross", "value": "sma_cross"},
                       {"name": "sma_ribbon", "value": "sma_ribbon"}]


async def test_button_click_on_channel_message(env: tuple[DiscordStandin, StandinBot]) -> None:
    ds, bot = env
    channel = bot.get_channel(MAIN_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    view = ConfirmView()
    await channel.send("Confirm trade?", view=view)
    posted = await ds.wait_for_message(MAIN_CHANNEL, lambda m: "trade:confirm" in m.custom_ids,
                                       timeout=3.0)
    record = await ds.click(posted, "trade:confirm", user_id=ALICE.id)
    await record.wait_done(timeout=3.0)
    assert record.type == 3 and record.callback_type == 7
    assert posted.content == "confirmed by alice" and posted.components == []
    assert record.original is posted
    assert await asyncio.wait_for(view.wait(), timeout=1.0) is False
    with pytest.raises(ValueError):
        await ds.click("trade:confirm")  # the button is gone after the update


async def test_click_on_ephemeral_reply_with_deferred_update(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, _ = env
    panel = await ds.invoke("panel", user_id=BOB.id)
    await panel.wait_done(timeout=3.0)
    assert panel.final is not None and panel.final.ephemeral
    record = await ds.click("panel:refresh", user_id=BOB.id)
    await record.wait_done(lambda r: any(e.kind == "delete_message" for e in r.events),
                           timeout=3.0)
    assert record.callback_type == 6 and record.original is panel.original
    assert panel.original is not None and panel.original.content == "refreshed by bob"
    assert [m.content for m in record.followups] == ["details"]
    assert record.followups[0].deleted and record.final is panel.original
    kinds = [e.kind for e in record.events]
    assert kinds == ["callback", "edit_original", "followup", "edit_message", "delete_message"]


async def test_channel_send_with_file_and_followup_after_defer(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, _ = env
    record = await ds.invoke("announce", {"where": ALERTS_CHANNEL, "text": "BTC broke out"})
    message: MessageRecord = await ds.wait_for_message(
        ALERTS_CHANNEL, lambda m: m.content == "BTC broke out", timeout=3.0)
    assert message.embeds[0]["title"] == "Alert"
    assert message.attachment("alert.png").data == PNG_EQUITY
    await record.wait_done(timeout=3.0)
    assert record.followups == [record.original]  # the first follow-up fills the placeholder
    assert record.final is not None and record.final.content == "posted to #channel-1"
    assert record.final.ephemeral and ds.channel_messages(MAIN_CHANNEL) == []


async def test_blocking_handler_misses_the_three_second_deadline(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, bot = env
    record = await ds.invoke("slow")
    await record.wait_done(lambda r: r.late, timeout=6.0, fail_on_expiry=False)
    assert record.expired and record.initial is None
    assert [e.status for e in record.rejected] == [404]
    await ds.wait_until(lambda: bot.errors, timeout=1.0, what="the bot to see NotFound")
    assert [getattr(e, "code", None) for e in bot.errors] == [10062]
    assert max(ds.heartbeat_gaps()) > 2.5  # the blocked loop also stalled the heartbeat


async def test_heartbeats_keep_their_interval_while_work_runs_off_loop(
    env: tuple[DiscordStandin, StandinBot],
) -> None:
    ds, _ = env
    record = await ds.invoke("backtest", {"seconds": 1.0})
    await record.wait_done(timeout=4.0)
    beats = await ds.wait_for_heartbeats(5, timeout=3.0)
    assert beats[0].sequence is None  # sent right after HELLO, before READY
    assert all(b.sequence is not None and b.sequence >= 2 for b in beats[2:])
    gaps = ds.heartbeat_gaps()
    assert min(gaps) > HEARTBEAT - 0.1 and max(gaps) < HEARTBEAT + 0.15, gaps
    assert record.final is not None and record.final.content == "backtest done"


async def test_protocol_errors_and_unknown_routes(env: tuple[DiscordStandin, StandinBot]) -> None:
    ds, _ = env
    record = await ds.invoke("secret")
    await record.wait_done(timeout=3.0)
    async with aiohttp.ClientSession() as http:
        again = f"{ds.api_url}/interactions/{record.id}/{record.token}/callback"
        async with http.post(again, json={"type": 4, "data": {"content": "x"}}) as resp:
            assert resp.status == 400
            assert await resp.json() == {"message": "Interaction has already been acknowledged.",
                                         "code": 40060}
        auth = {"Authorization": f"Bot {ds.token}"}
        async with http.get(f"{ds.api_url}/not/a/route", headers=auth) as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "Unknown", "code": 0}
    assert record.rejected[0].status == 400 and not record.expired
    assert ds.unknown_routes == ["GET /api/v10/not/a/route"]
    ds.unknown_routes.clear()


async def test_wrong_token_is_rejected() -> None:
    async with DiscordStandin(guild_id=GUILD_ID, channel_ids=[MAIN_CHANNEL]) as ds:
        with pytest.raises(discord.LoginFailure):
            async with ds.connect(StandinBot(), token="not-the-token", ready_timeout=3.0):
                pass
