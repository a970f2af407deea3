"""Settings from the environment (and a ``.env`` file), validated once at start-up.

Every variable carries the ``PAPERBOT_`` prefix except ``DISCORD_TOKEN``. Secrets are
``SecretStr`` and never printed. ``load_settings`` turns pydantic's validation errors into one
``SettingsError`` naming each bad variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(ValueError):
    """Invalid configuration; the message lists each variable and what is wrong with it."""


IdList = Annotated[list[int], NoDecode]


def _split_ids(value: str) -> list[str]:
    """``"1, 2;3"`` → ``["1", "2", "3"]`` (commas, semicolons or spaces separate ids)."""
    return [part for part in value.replace(";", ",").replace(" ", ",").split(",") if part]


class Settings(BaseSettings):
    """paperbot configuration. See README.md's configuration table for each variable."""

    model_config = SettingsConfigDict(env_prefix="PAPERBOT_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

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

    balance: float = Field(10_000.0, gt=0, description="default starting balance (quote)")
    fee_bps: float = Field(10.0, ge=0, lt=10_000, description="taker fee, basis points")
    maker_fee_bps: float | None = Field(None, ge=0, lt=10_000,
                                        description="maker fee (take-profit fills), bp")
    slippage_bps: float = Field(0.0, ge=0, lt=10_000, description="slippage, basis points")

    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    guild_id: int | None = Field(None, description="the first of guild_ids (None: no guild)")
    guild_ids: IdList = Field(
        default_factory=list, description="guilds the bot serves (PAPERBOT_GUILD_ID, "
        "comma-separated); commands are synced to each and refused anywhere else")
    alerts_channel_id: int | None = Field(None, description="channel for every trade alert")
    allowed_user_ids: IdList = Field(default_factory=list)
    allowed_role_ids: IdList = Field(default_factory=list)
    manager_role_ids: IdList = Field(default_factory=list,
                                     description="roles that may stop/close anyone's runs")

    feed_timeout_s: float = Field(60.0, gt=0, description="silence after which a stream is dead")
    stale_after_min: float = Field(10.0, gt=0, description="minutes without candles → event")
    log_level: str = Field("INFO")

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
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None

