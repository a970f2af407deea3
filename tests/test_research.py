"""Research: search spaces, optimisation on a process pool and on a Dask cluster, resuming a
killed study, failing trials, walk-forward folds, Monte Carlo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.backtest_request import BacktestRequest
from engine.errors import ServiceError
from engine.research.executor import DaskExecutor, LocalExecutor
from engine.research.montecarlo import monte_carlo
from engine.research.optimize import OptimizeRequest, run_optimize
from engine.research.space import parse_space
from engine.research.walkforward import Fold, WalkForwardRequest, folds, run_walkforward
from strategies.sma_cross import SmaCross
from tests.helpers import HOUR, T0, die_with_test
from tests.research_helpers import ramp_settings

ROOT = Path(__file__).resolve().parents[1]
DAY = 24 * HOUR


@pytest.fixture(scope="module")
def cluster():
    """An in-process Dask cluster with two single-threaded workers."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as lc, Client(lc, set_as_default=False) as client:
        yield client


def ramp_request(study: str, **options) -> OptimizeRequest:
    params = options.pop("params", {})
    options = {"objective": "return", "min_trades": 1, **options}
    return OptimizeRequest(BacktestRequest(strategy="ramp", symbol="RAMP/USDT", timeframe="1h",
                                           params=params), study=study, **options)


def test_space_ranges_are_typed_by_the_declared_defaults():
    space = parse_space(["fast=5:50", "slow=20:200:10", "size_percent=10:90:20"],
                        SmaCross.params)
    assert space["fast"].grid() == list(range(5, 51))
    assert space["slow"].grid()[:3] == [20, 30, 40] and space["slow"].grid()[-1] == 200
    assert space["size_percent"].grid() == [10.0, 30.0, 50.0, 70.0, 90.0]
    assert parse_space(None, SmaCross.params, SmaCross.param_space)["slow"].step == 10
    for bad, message in [(["fast=5.5:9"], "whole numbers"), (["fast=9:5"], "above high"),
                         (["speed=1:2"], "no parameter 'speed'"), (["fast=1:9:0"], "step"),
                         (["fast=a:b"], "not a number")]:
        with pytest.raises(ServiceError, match=message):
            parse_space(bad, SmaCross.params)
    with pytest.raises(ServiceError, match="needs a step"):
        parse_space(["size_percent=10:90"], SmaCross.params)["size_percent"].grid()


def test_grid_search_finds_the_known_best(tmp_path, cluster):
    settings = ramp_settings(tmp_path)
    report = run_optimize(ramp_request("ramp-grid", sampler="grid", trials=500), settings,
                          executor=DaskExecutor(client=cluster))
    assert report.complete == 4 * 11 and report.failed == 0  # the whole grid, once
    assert report.best.params == {"entry": 0, "hold": 40}
    # 50 % of 10,000 bought at 100, sold at 140, no fees: +20 %
    assert report.best.value == pytest.approx(20.0)
    assert report.best.metrics["num_trades"] == 1
    assert [t.value for t in report.top] == sorted((t.value for t in report.top), reverse=True)
    assert report.heatmap is not None and report.heatmap.read_bytes()[:4] == b"\x89PNG"
    assert set(report.importance) == {"entry", "hold"}


def test_trials_on_a_dask_cluster_equal_those_on_the_process_pool(tmp_path, cluster):
    results = {}
    for name, executor in (("pool", LocalExecutor(2)), ("dask", DaskExecutor(client=cluster))):
        settings = ramp_settings(tmp_path / name)
        report = run_optimize(ramp_request("same", sampler="random", trials=12, seed=5),
                              settings, executor=executor)
        executor.close()
        import optuna

        from engine.research.studies import open_storage
        study = optuna.load_study(study_name="same",
                                  storage=open_storage(tmp_path / name / "studies.db"))
        results[name] = {t.number: (t.params, t.value, t.user_attrs["metrics"]["final_equity"])
                         for t in study.trials}
        assert report.complete == 12
    assert results["pool"] == results["dask"]
    assert len({str(p) for p, _, _ in results["pool"].values()}) > 3  # really different trials


def test_a_dead_worker_or_a_raising_trial_fails_only_that_trial(tmp_path, cluster):
    settings = ramp_settings(tmp_path)
    executor = LocalExecutor(1)
    report = run_optimize(ramp_request("dies", sampler="grid", trials=50, space=("hold=10:60:5",),
                                       params={"die_at_hold": "25"}),
                          settings, executor=executor)
    executor.close()
    assert executor.restarts >= 1
    # short trials travel in batches; the trials of the broken pool run again one at a time,
    # so only the trial that kills its worker fails; the study goes on with a new pool
    assert executor.batch > 1
    assert report.failed == 1 and report.complete == 10
    import optuna

    from engine.research.studies import open_storage
    study = optuna.load_study(study_name="dies", storage=open_storage(tmp_path / "studies.db"))
    by_hold = {t.params["hold"]: t for t in study.trials}
    assert by_hold[25].state.name == "FAIL"
    assert "worker" in by_hold[25].user_attrs["note"]
    assert report.best.value == max(t.value for t in study.trials if t.value is not None)
    # on Dask, an exception in a trial is that trial's failure, with the error kept
    report = run_optimize(ramp_request("raises", sampler="grid", trials=50,
                                       space=("hold=10:60:5",), params={"raise_at_hold": "30"}),
                          settings, executor=DaskExecutor(client=cluster))
    assert (report.complete, report.failed) == (10, 1)
    study = optuna.load_study(study_name="raises", storage=open_storage(tmp_path / "studies.db"))
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed[0].params == {"hold": 30} and "boom at hold 30" in failed[0].user_attrs["note"]


def test_a_killed_study_resumes_where_it_stopped(tmp_path, cluster):
    settings = ramp_settings(tmp_path)
    db = tmp_path / "studies.db"
    args = [sys.executable, "-m", "engine.cli.main", "optimize", "--strategy", "ramp",
            "--symbol", "RAMP/USDT", "--timeframe", "1h", "--objective", "return",
            "--min-trades", "1", "--sampler", "random", "--seed", "3", "--trials", "40",
            "--study", "long", "--param", "pause_ms=60", "--workers", "1", "--no-charts",
            "--data-dir", str(settings.data_dir), "--strategy-dir", str(settings.strategy_dir),
            "--study-db", str(db)]
    env = {**os.environ, "PAPERBOT_FEE_BPS": "0", "PAPERBOT_OFFLINE": "true"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=die_with_test)
    import optuna

    from engine.research.studies import open_storage
    try:
        deadline = time.monotonic() + 60
        done = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if db.exists():
                try:
                    study = optuna.load_study(study_name="long", storage=open_storage(db))
                except KeyError:
                    continue
                done = [t for t in study.trials if t.state.name == "COMPLETE"]
                if len(done) >= 8:
                    break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert len(done) >= 8
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its worker, at once
        proc.wait(timeout=10)
    before = {t.number: (t.params, t.value) for t in done}
    report = run_optimize(ramp_request("long", sampler="random", seed=3, trials=40,
                                       params={"pause_ms": "60"}),
                          settings.model_copy(update={"study_db": db}),
                          executor=DaskExecutor(client=cluster))
    assert report.resumed and 0 < report.ran_now <= 40 - len(before)
    study = optuna.load_study(study_name="long", storage=open_storage(db))
    assert len(study.trials) == 40
    assert sorted(t.number for t in study.trials) == list(range(40))
    kept = {t.number: (t.params, t.value) for t in study.trials if t.number in before}
    assert kept == before  # nothing done before the kill was lost or redone
    states = {t.state.name for t in study.trials}
    assert states <= {"COMPLETE", "FAIL"} and "RUNNING" not in states
    # the same name with another search is refused
    with pytest.raises(ServiceError, match="already holds another search"):
        run_optimize(ramp_request("long", objective="sharpe"), settings.model_copy(
            update={"study_db": db}), executor=DaskExecutor(client=cluster))


def test_walk_forward_folds_are_exactly_the_windows():
    assert folds(T0, T0 + 100 * HOUR, 24 * HOUR, 12 * HOUR, anchored=False) == [
        Fold(T0 + k * 12 * HOUR, T0 + (24 + 12 * k) * HOUR, T0 + (24 + 12 * k) * HOUR,
             T0 + (36 + 12 * k) * HOUR) for k in range(6)]
    anchored = folds(T0, T0 + 10 * DAY, 4 * DAY, 3 * DAY, anchored=True)
    assert anchored == [Fold(T0, T0 + 4 * DAY, T0 + 4 * DAY, T0 + 7 * DAY),
                        Fold(T0, T0 + 7 * DAY, T0 + 7 * DAY, T0 + 10 * DAY)]
    assert folds(T0, T0 + 5 * DAY, 4 * DAY, 3 * DAY, anchored=False) == []


def test_walk_forward_runs_those_folds_and_stitches_the_tests(tmp_path, cluster):
    settings = ramp_settings(tmp_path)
    request = WalkForwardRequest(BacktestRequest(strategy="ramp", symbol="RAMP/USDT",
                                                 timeframe="1h"),
                                 space=("hold=2:10:2",), objective="return", min_trades=1,
                                 trials=5, sampler="grid", train="24h", test="12h")
    report = run_walkforward(request, settings, executor=DaskExecutor(client=cluster))
    assert [f.fold for f in report.folds] == folds(T0, T0 + 100 * HOUR, 24 * HOUR, 12 * HOUR,
                                                   False)
    # each test window trades on its own: the ramp strategy buys at the window's first candle
    tested = [f for f in report.folds if f.out_of_sample]
    assert tested and report.chart is not None and report.chart.exists()
    oos_trades = sum(f.out_of_sample["num_trades"] for f in tested)
    assert report.overall["num_trades"] == oos_trades
    growth = np.prod([1 + f.out_of_sample["total_return_pct"] / 100 for f in tested])
    assert report.overall["total_return_pct"] == pytest.approx((growth - 1) * 100)


def test_monte_carlo_with_a_seed_is_reproducible():
    rng = np.random.default_rng(0)
    pnls = list(rng.normal(20, 150, size=60))
    a = monte_carlo(pnls, 10_000, runs=1000, seed=11)
    b = monte_carlo(pnls, 10_000, runs=1000, seed=11)
    c = monte_carlo(pnls, 10_000, runs=1000, seed=12)
    assert a == b and a.methods != c.methods
    shuffle, boot = a.methods
    # a shuffle only reorders: the final return is the actual one in every run
    assert shuffle.final_return_pct == pytest.approx((a.actual_return_pct,) * 3)
    assert a.actual_return_pct == pytest.approx(sum(pnls) / 100)
    p5, p50, p95 = boot.final_return_pct
    assert p5 < p50 < p95
    assert shuffle.max_drawdown_pct[0] <= shuffle.max_drawdown_pct[2] <= 0
    with pytest.raises(ServiceError, match="at least 2 trades"):
        monte_carlo([1.0], 10_000)


def test_research_settings_and_cli_errors(tmp_path, capsys):
    from engine.cli.main import main
    from engine.research.optimize import study_db
    from engine.settings import SettingsError, load_settings

    settings = load_settings(db_path=tmp_path / "data" / "runs.db", dask_scheduler=" ")
    assert settings.dask_scheduler is None
    assert study_db(settings) == tmp_path / "data" / "studies.db"
    assert load_settings(dask_scheduler="tcp://10.0.0.5:8786").dask_scheduler == \
        "tcp://10.0.0.5:8786"
    with pytest.raises(SettingsError, match=r"PAPERBOT_DASK_SCHEDULER: .*tcp://"):
        load_settings(dask_scheduler="10.0.0.5")
    settings = ramp_settings(tmp_path)
    base = ["--strategy", "ramp", "--symbol", "RAMP/USDT", "--data-dir",
            str(settings.data_dir), "--strategy-dir", str(settings.strategy_dir), "--offline",
            "--study-db", str(tmp_path / "s.db")]
    for extra, message in [(["--space", "speed=1:3"], "ramp has no parameter 'speed'"),
                           (["--space", "hold=9:3"], "low 9 is above high 3"),
                           (["--trials", "0"], "trials must be 1 to 100,000"),
                           (["--study", "bad name!"], "bad study name")]:
        assert main(["optimize", *base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert main(["walkforward", *base[:-2], "--train", "ninety"]) == 2
    assert "bad train window 'ninety'" in capsys.readouterr().err


def test_the_bot_process_imports_no_optuna_or_dask():
    code = ("import sys, bot.app, bot.client, engine.service, engine.runtime; "
            "print(sorted(m for m in ('optuna', 'distributed', 'dask', 'pandas', 'matplotlib')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
