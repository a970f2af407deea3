"""Settings from the environment (and a ``.env`` file), validated once at start-up.

Every variable carries the ``PAPERBOT_`` prefix except ``DISCORD_TOKEN``. Secrets are
``SecretStr`` and never printed. ``load_settings`` turns pydantic's validation errors into one
``SettingsError`` naming each bad variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from data.names import shown
from engine.errors import scrub_secrets
from engine.limits import check_balance, check_bps

#: Exchanges with a live feed: the only valid ``PAPERBOT_LIVE_EXCHANGE`` values.
LIVE_EXCHANGES = ("bybit", "binance")
#: Valid ``PAPERBOT_LOG_LEVEL`` values (any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# ccxt ids accepted without importing ccxt (0.5 s) to check the id
_COMMON_EXCHANGES = frozenset({"binance", "bybit", "binanceusdm", "okx"})


class SettingsError(ValueError):
    """Invalid configuration; the message lists each variable and what is wrong with it.

    ``problems`` holds one ``"PAPERBOT_X: what is wrong"`` line per bad variable.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


IdList = Annotated[list[int], NoDecode]


def _split_ids(value: str) -> list[str]:
    """``"1, 2;3"`` → ``["1", "2", "3"]`` (commas, semicolons or spaces separate ids)."""
    return [part for part in value.replace(";", ",").replace(" ", ",").split(",") if part]


class Settings(BaseSettings):
    """paperbot configuration. See README.md's configuration table for each variable."""

    model_config = SettingsConfigDict(env_prefix="PAPERBOT_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True, env_ignore_empty=True)

    data_dir: Path = Field(Path("var/candles"), description="Parquet candle cache folder")
    db_path: Path = Field(Path("var/paperbot.db"), description="SQLite database of forward runs")
    out_dir: Path = Field(Path("var/out"), description="where backtest charts and CSVs go")
    strategy_dir: Path | None = Field(None, description="extra folder of user strategies")

    exchange: str = Field("binance", description="default exchange for backtests and data")
    live_exchange: str = Field("bybit", description="default exchange for forward runs")
    market_type: str = Field("spot", description="spot or linear (USDT perpetuals)")
    exchange_rest_url: str | None = Field(
        None, description="REST host override for ccxt, for the live exchange")
    exchange_ws_url: str | None = Field(
        None, description="full websocket stream URL override, for the live exchange")
    offline: bool = Field(False, description="never fetch candles from the exchange")

    balance: float = Field(10_000.0, description="default starting balance (quote)")
    fee_bps: float = Field(10.0, description="taker fee, basis points")
    maker_fee_bps: float | None = Field(None, description="maker fee (take-profit fills), bp")
    slippage_bps: float = Field(0.0, description="slippage, basis points")

    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    guild_id: int | None = Field(None, description="the first of guild_ids (None: no guild)")
    guild_ids: IdList = Field(
        default_factory=list, description="guilds the bot serves (PAPERBOT_GUILD_ID, "
        "comma-separated); commands are synced to each and refused anywhere else")
    alerts_channel_id: int | None = Field(None, description="channel for every trade alert")
    trade_alerts_channel_id: int | None = Field(
        None, description="channel for trade alerts (opened, closed, rejected, caught up)")
    ops_alerts_channel_id: int | None = Field(
        None, description="channel for run and feed alerts (started, stopped, feed, errors)")
    summary_alerts_channel_id: int | None = Field(
        None, description="channel for daily summaries and outage summaries")
    thread_per_run: bool = Field(False, description="a thread per run for its alerts")
    chart_theme: str = Field("dark", description="chart colours: dark or light")
    allowed_user_ids: IdList = Field(default_factory=list)
    allowed_role_ids: IdList = Field(default_factory=list)
    manager_role_ids: IdList = Field(default_factory=list,
                                     description="roles that may stop/close anyone's runs")

    feed_timeout_s: float = Field(60.0, gt=0, description="silence after which a stream is dead")
    stale_after_min: float = Field(10.0, gt=0, description="minutes without candles → event")
    resume_retry_s: float = Field(5.0, gt=0, le=300,
                                  description="first retry (s) of a run that cannot resume; "
                                              "doubles up to 5 min")
    log_level: str = Field("INFO")

    # default risk guards of every run (engine.risk; a strategy's and a run's own win)
    protect_max_open_positions: str | None = Field(None, description="positions, or off")
    protect_cooldown: str | None = Field(None, description="candles after a stop-loss")
    protect_stoploss_guard: str | None = Field(None, description="K/N/M, e.g. 3/24/12")
    protect_daily_loss_limit_pct: str | None = Field(None, description="% loss in a UTC day")
    protect_max_drawdown_pct: str | None = Field(None, description="% below peak equity")
    protect_max_drawdown_flatten: str | None = Field(None, description="true: close all too")

    @field_validator("protect_max_open_positions", "protect_cooldown", "protect_stoploss_guard",
                     "protect_daily_loss_limit_pct", "protect_max_drawdown_pct",
                     "protect_max_drawdown_flatten", mode="before")
    @classmethod
    def _protection(cls, value: Any, info: Any) -> Any:
        from engine.risk.config import parse_value

        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        parse_value(info.field_name.removeprefix("protect_"), value, "")  # ValueError if bad
        return str(value).strip()
    dask_scheduler: str | None = Field(
        None, description="Dask scheduler address (tcp://host:8786) for research trials; "
                          "empty: a local process pool")
    study_db: Path | None = Field(
        None, description="SQLite file of Optuna studies (default: studies.db beside db_path)")

    @model_validator(mode="before")
    @classmethod
    def _guilds(cls, data: Any) -> Any:
        """``PAPERBOT_GUILD_ID`` may list several guilds: all go to ``guild_ids``, the first to
        ``guild_id`` (so code reading ``guild_id`` keeps working); empty means no guild."""
        if not isinstance(data, dict) or data.get("guild_ids"):
            return data
        raw = data.get("guild_id")
        if isinstance(raw, str):
            parts = _split_ids(raw)
            if all(part.isdigit() for part in parts):  # else guild_id's own error names it
                return {**data, "guild_id": parts[0] if parts else None, "guild_ids": parts}
        elif raw is not None:
            return {**data, "guild_ids": [raw]}
        return data

    @model_validator(mode="after")
    def _first_guild(self) -> Settings:
        if self.guild_ids and self.guild_id not in self.guild_ids:
            self.guild_id = self.guild_ids[0]
        return self

    @field_validator("allowed_user_ids", "allowed_role_ids", "manager_role_ids", "guild_ids",
                     mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _split_ids(value)
        return value

    @field_validator("exchange", "live_exchange")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("exchange")
    @classmethod
    def _ccxt_id(cls, value: str) -> str:
        if value not in _COMMON_EXCHANGES:
            from data.exchanges import check_exchange_id

            check_exchange_id(value)  # UnknownExchangeError is a ValueError
        return value

    @field_validator("live_exchange")
    @classmethod
    def _live(cls, value: str) -> str:
        if value not in LIVE_EXCHANGES:
            raise ValueError(f"forward runs support {' and '.join(LIVE_EXCHANGES)} only, "
                             f"got {shown(value)}")
        return value

    @field_validator("fee_bps", "maker_fee_bps", "slippage_bps")
    @classmethod
    def _bps(cls, value: float | None) -> float | None:
        return None if value is None else check_bps(value, "value")

    @field_validator("balance")
    @classmethod
    def _balance(cls, value: float) -> float:
        return check_balance(value, "value")

    @field_validator("chart_theme")
    @classmethod
    def _theme(cls, value: str) -> str:
        theme = value.strip().lower()
        if theme not in ("dark", "light"):
            raise ValueError(f"must be dark or light, got {shown(value)}")
        return theme

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {shown(value)}")
        return level

    @field_validator("db_path")
    @classmethod
    def _db_file(cls, value: Path) -> Path:
        if value.is_dir():
            raise ValueError(f"{value} is a folder; give the database file, e.g. "
                             "var/paperbot.db")
        above = next((p for p in value.parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise ValueError(f"{above} is a file, not a folder, so {value} cannot be created")
        return value

    @field_validator("dask_scheduler", mode="before")
    @classmethod
    def _scheduler(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if "://" not in text:
                raise ValueError(f"must be a scheduler address such as tcp://10.0.0.5:8786, "
                                 f"got {shown(scrub_secrets(text), 60)}")
            return text
        return value

    @field_validator("exchange_rest_url", "exchange_ws_url", mode="before")
    @classmethod
    def _blank_url(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("exchange_rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("http", "https"), "https://api.bybit.com")

    @field_validator("exchange_ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("ws", "wss"), "wss://stream.bybit.com/v5/public/spot")

    @field_validator("market_type")
    @classmethod
    def _market(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("spot", "linear"):
            raise ValueError("must be spot or linear")
        return value

    def rest_url_for(self, exchange: str) -> str | None:
        """The REST host override, which applies to the live exchange only (else None)."""
        return self.exchange_rest_url if exchange == self.live_exchange else None

    @property
    def maker_fee(self) -> float:
        """Maker fee in basis points (the taker fee unless set)."""
        return self.fee_bps if self.maker_fee_bps is None else self.maker_fee_bps


def _check_url(value: str | None, schemes: tuple[str, ...], example: str) -> str | None:
    """``value`` stripped when it is an absolute URL of one of ``schemes`` (None stays None).

    Raises:
        ValueError: naming the schemes and an example; the bad value is shown scrubbed of
            credentials.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        parts = urlsplit(text)
        ok = parts.scheme.lower() in schemes and bool(parts.hostname)
    except ValueError:  # e.g. an invalid IPv6 host or port
        ok = False
    if not ok:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"must be a URL starting with {wanted}, such as {example}, got "
                         f"{shown(scrub_secrets(text), 60)}")
    return text


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; ``overrides`` win.

    Raises:
        SettingsError: listing every invalid variable, e.g.
            ``PAPERBOT_FEE_BPS: Input should be a valid number``.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            name = "DISCORD_TOKEN" if field in ("discord_token", "DISCORD_TOKEN") \
                else f"PAPERBOT_{field.upper()}"
            cause = (err.get("ctx") or {}).get("error")
            text = str(cause) if isinstance(cause, ValueError) else err["msg"]
            lines.append(f"{name}: {scrub_secrets(text)}")
        raise SettingsError("invalid settings: " + "; ".join(lines), lines) from None

