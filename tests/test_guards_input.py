"""Protections as the trader types them: ``--protect`` on the CLI (bad values: one line, exit
2), ``protect:`` in Discord (an ephemeral error), ``PAPERBOT_PROTECT_*`` settings, a
strategy's ``protections`` attribute, and which one wins; counts in the backtest report."""

from __future__ import annotations

import json
import textwrap

import pytest

import engine.cli.forward_cmd as forward_cmd
from bot import embeds
from engine.events import GuardLifted, GuardTripped, from_record, to_record
from engine.risk import Guards, ProtectionError, Protections, for_run, parse_pairs
from engine.settings import load_settings
from engine.strategy import Strategy
from tests.bot_helpers import TRADER, bot_env
from tests.helpers import SAMPLE_DATA, run_cli

BACKTEST = ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h",
            "--start", "2019-01-01", "--end", "2019-03-31", "--data-dir", str(SAMPLE_DATA),
            "--no-charts", "--offline", "--param", "fast=5", "--param", "slow=20",
            "--param", "stop_loss_pct=0.5"]

BAD = [
    ("cooldown=-1", "--protect cooldown='-1': cooldown takes a whole number of candles"),
    ("daily_loss_limit_pct=nan", "--protect daily_loss_limit_pct='nan': daily_loss_limit_pct "
                                 "takes a percent above 0 and at most 100"),
    ("max_drawdown_pct=inf", "--protect max_drawdown_pct='inf'"),
    ("max_drawdown_pct=0", "--protect max_drawdown_pct='0'"),
    ("max_open_positions=-2", "--protect max_open_positions='-2': max_open_positions takes a "
                              "whole number of positions from 1"),
    ("stoploss_guard=3/0/5", "--protect stoploss_guard='3/0/5': stoploss_guard takes K/N/M"),
    ("cooldown=2.5", "--protect cooldown='2.5'"),
    ("cooldwn=5", "unknown --protect 'cooldwn'; did you mean cooldown?"),
    ("cooldown", "--protect 'cooldown' is not name=value"),
    ("max_drawdown_flatten=maybe", "max_drawdown_flatten takes true or false"),
]


pytestmark = pytest.mark.usefixtures("cli_isolated")


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err


@pytest.mark.parametrize("value,message", BAD, ids=[b[0] for b in BAD])
def test_bad_protection_is_one_line_and_exit_2_for_backtest_and_forward(
        capsys, monkeypatch, tmp_path, value, message):
    assert_one_line_error(*run_cli(capsys, *BACKTEST, "--protect", value), message)

    async def must_not_serve(*_args):
        raise AssertionError("the runtime was started")

    monkeypatch.setattr(forward_cmd, "_serve", must_not_serve)
    assert_one_line_error(*run_cli(capsys, "forward", "--strategy", "sma_cross", "--symbol",
                                   "BTC/USDT", "--protect", value, "--db",
                                   str(tmp_path / "runs.db")), message)


def test_combinations_are_checked_with_the_run(capsys):
    assert_one_line_error(*run_cli(capsys, *BACKTEST, "--protect", "max_drawdown_flatten=true"),
                          "max_drawdown_flatten=true needs max_drawdown_pct")
    assert_one_line_error(*run_cli(capsys, *BACKTEST, "--timeframe", "1d", "--protect",
                                   "daily_loss_limit_pct=3"),
                          "daily_loss_limit_pct needs a base timeframe shorter than 1d")


def test_bad_protection_settings_stop_the_program_with_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("PAPERBOT_PROTECT_COOLDOWN", "-1")
    monkeypatch.setenv("PAPERBOT_PROTECT_STOPLOSS_GUARD", "3/24")
    code, out, err = run_cli(capsys, *BACKTEST)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: PAPERBOT_PROTECT_COOLDOWN: cooldown takes a whole number of candles from 0 to "
        "1,000,000 (0 or off: no cooldown)",
        "error: PAPERBOT_PROTECT_STOPLOSS_GUARD: stoploss_guard takes K/N/M, three whole "
        "numbers from 1 to 1,000,000: K stop-losses within N candles lock entries for M "
        "candles, e.g. 3/24/12 (off: none)"]


def test_backtest_reports_blocks_per_guard(capsys, monkeypatch):
    monkeypatch.setenv("PAPERBOT_PROTECT_DAILY_LOSS_LIMIT_PCT", "1")  # a default …
    code, out, err = run_cli(capsys, *BACKTEST, "--json", "--protect", "cooldown=10",
                             "--protect", "stoploss_guard=2/24/24 max_open_positions=1")
    assert code == 0, err
    result = json.loads(out)
    assert result["protections"] == {"daily_loss_limit_pct": 1.0, "stoploss_guard": "2/24/24",
                                     "cooldown": 10, "max_open_positions": 1}
    blocks = result["guard_blocks"]
    assert set(blocks) == set(result["protections"])
    assert blocks["cooldown"] > 0 and blocks["stoploss_guard"] > 0
    guard_reasons = [r for r in result["rejections"]
                     if r["reason"].split(":")[0] in result["protections"]]
    assert len(guard_reasons) == sum(blocks.values())
    for name, count in blocks.items():
        assert sum(r["reason"].startswith(f"{name}: no entries until ")
                   for r in guard_reasons) == count
    # … the run switches it off; the summary counts the blocks per guard
    alone = ["--protect", "cooldown=10", "--protect", "daily_loss_limit_pct=off"]
    code, out, err = run_cli(capsys, *BACKTEST, *alone)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("protections:"))
    head, count = line.rsplit(" ", 1)
    assert head == "protections: cooldown=10 · entries blocked: cooldown"
    code, out, err = run_cli(capsys, *BACKTEST, *alone, "--json")
    assert json.loads(out)["guard_blocks"] == {"cooldown": int(count)} and int(count) > 0


STRATEGY = textwrap.dedent('''
    from engine.strategy import Strategy

    class Guarded(Strategy):
        """Does nothing; declares protections."""
        timeframes = ["1h"]
        protections = {"cooldown": 4, "max_open_positions": 1, "stoploss_guard": (2, 12, 6)}
''')


def test_run_beats_strategy_beats_settings(tmp_path):
    settings = load_settings(protect_cooldown="2", protect_max_drawdown_pct="30",
                             protect_max_open_positions="3", db_path=tmp_path / "r.db")

    class Guarded(Strategy):
        name = "guarded"
        protections = {"cooldown": 4, "max_open_positions": 1, "stoploss_guard": (2, 12, 6)}

    resolved = for_run({"cooldown": "6", "stoploss_guard": "off"}, Guarded(), settings)
    assert resolved == Protections(max_open_positions=1, cooldown=6, max_drawdown_pct=30.0)
    assert resolved.text() == "max_drawdown_pct=30 cooldown=6 max_open_positions=1"
    assert for_run({}, Guarded(), settings) == Protections(
        max_open_positions=1, cooldown=4, stoploss_guard=(2, 12, 6), max_drawdown_pct=30.0)

    class Broken(Strategy):
        name = "broken"
        protections = {"cooldown": -3}

    with pytest.raises(ProtectionError, match=r"^strategy broken protection cooldown='-3'"):
        for_run({}, Broken(), settings)
    assert parse_pairs("daily_loss_limit_pct=3 cooldown=5") == {
        "daily_loss_limit_pct": "3", "cooldown": "5"}


def test_strategy_protections_reach_the_backtest(capsys, tmp_path):
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "guarded.py").write_text(STRATEGY)
    code, out, err = run_cli(capsys, "backtest", "--strategy", "guarded", "--symbol",
                             "BTC/USDT", "--start", "2019-01-01", "--end", "2019-01-02",
                             "--data-dir", str(SAMPLE_DATA), "--strategy-dir", str(folder),
                             "--json", "--no-charts", "--offline", "--protect", "cooldown=1")
    assert code == 0, err
    result = json.loads(out)
    assert result["protections"] == {"stoploss_guard": "2/12/6", "cooldown": 1,
                                     "max_open_positions": 1}
    assert result["guard_blocks"] == {"stoploss_guard": 0, "cooldown": 0,
                                      "max_open_positions": 0}


async def test_discord_bad_protection_is_ephemeral_and_good_ones_are_counted(tmp_path):
    base = {"strategy": "sma_cross", "symbol": "BTC/USDT", "timeframe": "1h"}
    async with bot_env(tmp_path) as env:
        answers = []
        for command, options in [
                ("backtest run", {**base, "protect": "cooldown=-1"}),
                ("backtest run", {**base, "protect": "daily_loss_limit_pct=nan cooldown=5"}),
                ("forward start", {**base, "timeframe": "1m", "protect": "cooldwn=5"})]:
            record = await env.ds.invoke(command, options, user_id=TRADER)
            await record.wait_done(lambda r: r.final is not None, timeout=30)
            answers.append(record)
        good = await env.ds.invoke("backtest run", {
            **base, "start": "2019-01-01", "end": "2019-03-31",
            "params": "fast=5 slow=20 stop_loss_pct=0.5",
            "protect": "cooldown=10 stoploss_guard=2/24/24"}, user_id=TRADER)
        await good.wait_done(lambda r: r.final is not None and bool(r.final.embeds),
                             timeout=60)
        runs = await env.runtime.service.runs()
    texts = []
    for record in answers:
        visible = [m for m in record.messages if not m.deleted]
        assert len(visible) == 1 and visible[0].ephemeral
        texts.append(visible[0].embeds[0]["description"])
    assert "protect cooldown='-1': cooldown takes a whole number of candles" in texts[0]
    assert "protect daily_loss_limit_pct='nan'" in texts[1]
    assert "unknown protect 'cooldwn'; did you mean cooldown?" in texts[2]
    assert runs == []
    fields = {f["name"]: f["value"] for f in good.final.embeds[0]["fields"]}
    counts = dict(item.rsplit(" ", 1) for item in fields["Guard blocks"].split(" · "))
    assert set(counts) == {"stoploss_guard", "cooldown"}
    assert int(counts["cooldown"]) > 0 and int(counts["stoploss_guard"]) > 0


def test_guard_alerts_round_trip_through_the_outbox_and_read_well():
    reason = ("cooldown: no entries until 2025-05-20 17:00 UTC (5 candles after the stop-loss "
              "candle closed at 12:00)")
    tripped = GuardTripped("3fa9c1", 1_747_742_400_000, "cooldown", reason, 1_747_760_400_000)
    lifted = GuardLifted("3fa9c1", 1_747_760_400_000, "cooldown")
    halted = GuardTripped("3fa9c1", 1_747_742_400_000, "max_drawdown_pct", "max_drawdown_pct: "
                          "no entries until equity is back within 10 % of its peak", None)
    for event in (tripped, lifted, halted):
        assert from_record(json.loads(json.dumps(to_record(event)))) == event
    embed = embeds.lifecycle(tripped, None)
    assert embed.title == "⛔ cooldown: no entries until 2025-05-20 17:00 UTC"
    assert embed.description.startswith(reason)
    assert embeds.lifecycle(lifted, None).title == "✅ cooldown lifted: entries allowed again"
    assert embeds.lifecycle(halted, None).title == "⛔ max_drawdown_pct: no entries for now"
    assert forward_cmd.event_line(tripped).endswith(f"guard tripped: {reason}")
    assert forward_cmd.event_line(lifted).endswith("guard lifted: cooldown, entries allowed "
                                                   "again")


def test_locks_can_be_read_from_a_stored_state():
    guards = Guards(Protections(cooldown=2, max_drawdown_pct=5), 3_600_000)
    guards.on_close(3_600_000, 10_000.0, 1)
    guards.on_exit(7_200_000, "stop_loss")
    guards.on_close(7_200_000, 9_000.0, 0)
    stored = json.loads(json.dumps(guards.to_state()))
    assert Guards.stored_locks(stored) == guards.active()
    assert [lock.guard for lock in guards.active()] == ["max_drawdown_pct", "cooldown"]
