"""Who may do what, and where: guild-only commands, open reading, run ownership (issue 7.11).

Everything goes through the real discord.py client and the Discord stand-in; a DM is an
interaction payload without guild or member, another guild one whose guild id is not configured.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.forward.engine import RunSpec
from engine.settings import SettingsError, load_settings
from tests.bot_helpers import CHANNEL, MANAGER, ROLE_TRADER, TRADER, VISITOR, bot_env
from tests.bot_helpers import start_run as start
from tests.forward_helpers import until

SECOND_GUILD = 900_000_000_000_000_002  # configured too, in the multi-guild test
OTHER_GUILD = 900_000_000_000_000_003  # never configured
COMMANDS = {"backtest", "forward", "positions", "trades", "pnl", "close", "strategies",
            "position", "panic", "audit", "optimize", "walkforward", "lookahead", "stats",
            "daily", "weekly", "monthly", "performance"}
DM_REFUSAL = "paperbot does not answer in direct messages"
GUILD_REFUSAL = "paperbot is not set up for this server"


async def start_run(env, user=TRADER):
    """A run of ``user`` with one open position (and its alert); returns (run id, alert)."""
    _, run_id = await start(env, params="stop_pct=5 take_pct=5", user=user)
    await env.ex.emit_candle("BTC/USDT", "1m")
    alert = await env.ds.wait_for_message(
        CHANNEL, lambda m: bool(m.embeds) and "opened" in m.embeds[0]["title"]
        and f"pb:close:{run_id}:1" in m.custom_ids, timeout=10)
    return run_id, alert


async def answered(record, timeout=10.0):
    await record.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                           timeout=timeout)
    return record


def title(record) -> str:
    """The embed title of an answer (empty before any)."""
    if record.final is None or not record.final.embeds:
        return ""
    return record.final.embeds[0].get("title") or ""


def text(record) -> str:
    """The one line of an answer (embed description or title; empty before any)."""
    if record.final is None or not record.final.embeds:
        return ""
    embed = record.final.embeds[0]
    return embed.get("description") or embed.get("title") or ""


async def audit_rows(env) -> list[tuple]:
    async with env.runtime.store.db.execute(
            "SELECT run_id, actor, action, detail FROM audit ORDER BY id") as cur:
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in await cur.fetchall()]


async def test_dm_and_other_guild_are_refused_and_nothing_changes(tmp_path):
    async with bot_env(tmp_path) as env:
        run_id, alert = await start_run(env)
        live = env.runtime.engine.runs[run_id]
        in_guild = await env.ds.autocomplete("forward stop", {"run": ""}, focused="run",
                                             user_id=TRADER)
        in_dm = await env.ds.autocomplete("forward stop", {"run": ""}, focused="run",
                                          user_id=TRADER, dm=True)
        elsewhere = await env.ds.autocomplete("positions", {"run": ""}, focused="run",
                                              user_id=TRADER, guild_id=OTHER_GUILD)
        dm = [await answered(await env.ds.invoke(name, options, user_id=user, dm=True))
              for name, options, user in [
                  ("positions", {}, VISITOR), ("forward list", {}, VISITOR),
                  ("strategies", {}, VISITOR), ("forward stop", {"run": run_id}, TRADER),
                  ("forward start", {"strategy": "sma_cross", "symbol": "BTC/USDT"}, TRADER)]]
        other = [await answered(await env.ds.invoke(name, options, user_id=user,
                                                    guild_id=OTHER_GUILD))
                 for name, options, user in [
                     ("trades", {"run": run_id}, VISITOR), ("forward list", {}, VISITOR),
                     ("close", {"run": run_id, "position": 1}, TRADER),
                     ("forward stop", {"run": run_id}, TRADER)]]
        clicks = [await answered(await env.ds.click(alert, f"pb:{kind}:{run_id}:1",
                                                    user_id=TRADER, **where))
                  for kind in ("chart", "close")
                  for where in ({"dm": True}, {"guild_id": OTHER_GUILD})]
        await asyncio.sleep(0.2)  # nothing may still be on its way
        runs = await env.runtime.service.runs()
        live_runs, still_open = list(env.runtime.engine.runs), bool(live.portfolio.positions)
        audit = await audit_rows(env)

    assert [c["value"] for c in in_guild] == [run_id]  # the same autocomplete, in the guild
    assert in_dm == [] and elsewhere == []
    dm_clicks, other_clicks = clicks[0::2], clicks[1::2]  # chart and close, each from both
    for record in dm + dm_clicks:
        assert record.ephemeral and DM_REFUSAL in text(record), record.describe()
    for record in other + other_clicks:
        assert record.ephemeral and GUILD_REFUSAL in text(record), record.describe()
    assert all(len(r.messages) == 1 and not r.attachments for r in dm + other + clicks)
    assert [(r.id, r.status, r.open_positions) for r in runs] == [(run_id, "running", 1)]
    assert live_runs == [run_id] and still_open
    refused = [(a[1], a[3]["action"]) for a in audit if a[2] == "refused"]
    assert (f"discord:{VISITOR}", "/positions") in refused
    assert (f"discord:{TRADER}", "/forward stop") in refused
    assert (f"discord:{TRADER}", "/forward start") in refused
    assert (f"discord:{TRADER}", f"button pb:chart:{run_id}:1") in refused
    assert len(refused) == len(dm) + len(other) + len(clicks)  # autocomplete is not audited
    guild_rows = [a[3] for a in audit if a[2] == "refused" and a[3].get("guild")]
    assert {row["guild"] for row in guild_rows} == {OTHER_GUILD}


async def test_commands_are_synced_to_each_configured_guild_and_the_global_set_is_empty(
        tmp_path):
    async with bot_env(tmp_path, guild_id=f"900000000000000001, {SECOND_GUILD}") as env:
        first, second = env.ds.commands(env.ds.world.guild_id), env.ds.commands(SECOND_GUILD)
        global_ = env.ds.commands(None)
        app = env.ds.world.application_id
        puts = [r for r in env.ds.rest.requests if r.startswith("PUT ")]
        served = await answered(await env.ds.invoke("forward list", user_id=VISITOR,
                                                    guild_id=SECOND_GUILD))
        refused = await answered(await env.ds.invoke("forward list", user_id=VISITOR,
                                                     guild_id=OTHER_GUILD))
    assert env.ds.world.guild_id == 900_000_000_000_000_001
    assert set(first) == set(second) == COMMANDS
    assert global_ == {}  # synced empty: stale global commands disappear
    assert f"PUT /api/v10/applications/{app}/commands" in puts
    assert f"PUT /api/v10/applications/{app}/guilds/{SECOND_GUILD}/commands" in puts
    assert not served.ephemeral and title(served) == "Forward runs"
    assert refused.ephemeral and GUILD_REFUSAL in text(refused)


async def test_without_a_guild_commands_are_global_but_guild_only(tmp_path):
    async with bot_env(tmp_path, guild_id=None) as env:
        global_ = env.ds.commands(None)
        guild = env.ds.guild_commands
        served = await answered(await env.ds.invoke("strategies", user_id=VISITOR,
                                                    guild_id=OTHER_GUILD))
        refused = await answered(await env.ds.invoke("strategies", user_id=VISITOR, dm=True))
    assert set(global_) == COMMANDS and guild == {}
    assert {name: c["contexts"] for name, c in global_.items()} == {n: [0] for n in COMMANDS}
    assert global_["forward"]["dm_permission"] is False  # the group itself, not only its children
    assert not served.ephemeral and title(served) == "Strategies"
    assert refused.ephemeral and DM_REFUSAL in text(refused)


async def test_runs_belong_to_their_starter_managers_may_act_on_any(tmp_path):
    async with bot_env(tmp_path) as env:
        run_id, alert = await start_run(env, user=TRADER)
        live = env.runtime.engine.runs[run_id]
        stop = await answered(await env.ds.invoke("forward stop", {"run": run_id},
                                                  user_id=ROLE_TRADER))
        close = await answered(await env.ds.invoke("close", {"run": run_id, "position": 1},
                                                   user_id=ROLE_TRADER))
        button = await answered(await env.ds.click(alert, f"pb:close:{run_id}:1",
                                                   user_id=ROLE_TRADER))
        # the owner's own confirmation prompt, clicked by someone else
        ask = await answered(await env.ds.click(alert, f"pb:close:{run_id}:1", user_id=TRADER))
        stolen = await env.ds.click(ask.final, ask.final.custom_ids[0], user_id=ROLE_TRADER)
        await stolen.wait_done(lambda r: "⚠️" in text(r), timeout=10)
        untouched = (bool(live.portfolio.positions), live.record.status)
        chart = await env.ds.click(alert, f"pb:chart:{run_id}:1", user_id=VISITOR)
        await chart.wait_done(lambda r: bool(r.attachments), timeout=20)
        # a manager closes the position, the owner stops the run
        manager_ask = await answered(await env.ds.invoke(
            "close", {"run": run_id, "position": 1}, user_id=MANAGER))
        confirm = await env.ds.click(manager_ask.final, manager_ask.final.custom_ids[0],
                                     user_id=MANAGER)
        await confirm.wait_done(lambda r: "Closed" in title(r), timeout=10)
        await until(lambda: not live.portfolio.positions)
        owner_stop = await env.ds.invoke("forward stop", {"run": run_id}, user_id=TRADER)
        await owner_stop.wait_done(timeout=10)
        # a run started from the command line: only a manager may stop it
        cli = await env.runtime.service.start_run(RunSpec(
            strategy="always_long", symbol="BTC/USDT", timeframe="1m", started_by="cli"))
        cli_refused = await answered(await env.ds.invoke("forward stop", {"run": cli.id},
                                                         user_id=TRADER))
        manager_stop = await env.ds.invoke("forward stop", {"run": cli.id}, user_id=MANAGER)
        await manager_stop.wait_done(timeout=10)
        runs = {r.id: r.status for r in await env.runtime.service.runs()}
        trades = await env.runtime.service.trades(run_id)
        audit = await audit_rows(env)

    owner_line = f"run {run_id} belongs to <@{TRADER}>; only they or a manager can"
    assert stop.ephemeral and text(stop) == f"⚠️ {owner_line} stop it"
    assert close.ephemeral and text(close) == f"⚠️ {owner_line} close it"
    assert button.ephemeral and text(button) == f"⚠️ {owner_line} close it"
    assert text(stolen) == f"⚠️ {owner_line} close it"
    assert untouched == (True, "running")  # the refusals changed nothing
    assert chart.ephemeral and chart.attachments[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(t.exit_reason, t.id) for t in trades] == [("manual", 1)]
    assert owner_stop.ephemeral and f"Run `{run_id}` stopped" in owner_stop.final.content
    assert cli_refused.ephemeral and text(cli_refused) == (
        f"⚠️ run {cli.id} was started from the command line; only a manager (a role in "
        "PAPERBOT_MANAGER_ROLE_IDS) can stop it")
    assert f"Run `{cli.id}` stopped" in manager_stop.final.content
    assert runs == {run_id: "stopped", cli.id: "stopped"}
    refusals = [(a[0], a[1], a[3]["action"], a[3]["owner"]) for a in audit
                if a[2] == "refused" and a[3].get("reason") == "not the run's owner"]
    owner = f"discord:{TRADER}"
    assert refusals == [(run_id, f"discord:{ROLE_TRADER}", "stop", owner),
                        (run_id, f"discord:{ROLE_TRADER}", "close", owner),
                        (run_id, f"discord:{ROLE_TRADER}", "close", owner),
                        (run_id, f"discord:{ROLE_TRADER}", "close", owner),
                        (cli.id, f"discord:{TRADER}", "stop", "cli")]


def test_guild_and_manager_settings_parse_lists_and_keep_guild_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("PAPERBOT_GUILD_ID", "111, 222;333")
    monkeypatch.setenv("PAPERBOT_MANAGER_ROLE_IDS", "7,8")
    several = load_settings()
    monkeypatch.setenv("PAPERBOT_GUILD_ID", "")
    monkeypatch.setenv("PAPERBOT_MANAGER_ROLE_IDS", "")
    empty = load_settings()
    one = load_settings(guild_id=444)
    monkeypatch.setenv("PAPERBOT_GUILD_ID", "111,abc")
    with pytest.raises(SettingsError) as bad:
        load_settings()
    assert (several.guild_ids, several.guild_id, several.manager_role_ids) == (
        [111, 222, 333], 111, [7, 8])
    assert (empty.guild_ids, empty.guild_id, empty.manager_role_ids) == ([], None, [])
    assert (one.guild_ids, one.guild_id) == ([444], 444)
    assert str(bad.value).startswith("invalid settings: PAPERBOT_GUILD_ID: ")
    assert "\n" not in str(bad.value)
