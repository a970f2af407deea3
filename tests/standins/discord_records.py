"""Interactions for the Discord stand-in: building INTERACTION_CREATE payloads and recording
what the bot sent back (messages, files, callbacks, edits, follow-ups)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .discord_gateway import JSON, Notifier, World, next_snowflake

EPHEMERAL = 64  #: message flag
LOADING = 128  #: message flag of a deferred ("is thinking…") reply
Uploads = dict[int, tuple[str, bytes]]  #: files[n] index -> (filename, bytes)


class InteractionExpiredError(AssertionError):
    """The bot missed Discord's 3-second first-response deadline for an interaction."""


@dataclass
class AttachmentRecord:
    """A file the bot uploaded (multipart ``files[n]``), with its exact bytes."""

    id: int
    filename: str
    data: bytes
    description: str | None = None

    @property
    def content_type(self) -> str:
        """MIME type guessed from the filename."""
        return mimetypes.guess_type(self.filename)[0] or "application/octet-stream"

    def to_payload(self, cdn: str, channel_id: int) -> JSON:
        """Discord attachment object (``url`` is served by the stand-in's CDN route)."""
        url = f"{cdn}/attachments/{channel_id}/{self.id}/{self.filename}"
        return {"id": str(self.id), "filename": self.filename, "size": len(self.data), "url": url,
                "proxy_url": url, "content_type": self.content_type,
                "description": self.description}


@dataclass(eq=False)
class MessageRecord:
    """A message the bot created; edits update it in place (raw bodies kept in ``history``)."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    flags: int = 0
    interaction_id: int | None = None
    webhook_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    edited_at: float | None = None
    deleted: bool = False
    history: list[JSON] = field(default_factory=list)
    extra: JSON = field(default_factory=dict)  #: tts, poll, message_reference, ...
    _created_wall: float = field(default_factory=time.time, repr=False)

    @property
    def ephemeral(self) -> bool:
        """Whether the EPHEMERAL flag (64) is set."""
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Whether this is still a deferred "thinking" placeholder."""
        return bool(self.flags & LOADING)

    @property
    def custom_ids(self) -> list[str]:
        """Every component ``custom_id`` in the message (nested rows/containers included)."""
        found: list[str] = []

        def walk(items: list[Any]) -> None:
            for item in items:
                if isinstance(item, dict):
                    if "custom_id" in item:
                        found.append(item["custom_id"])
                    walk([*item.get("components", []), item.get("accessory")])

        walk(self.components)
        return found

    def attachment(self, filename: str) -> AttachmentRecord:
        """Return the attachment called ``filename`` (``KeyError`` if absent)."""
        for att in self.attachments:
            if att.filename == filename:
                return att
        raise KeyError(f"no attachment {filename!r}; have {[a.filename for a in self.attachments]}")

    def apply(self, data: JSON, uploads: Uploads, *, edit: bool) -> list[AttachmentRecord]:
        """Apply a create/edit body (JSON or ``payload_json``) and return newly uploaded files."""
        self.history.append(data)
        if "content" in data:
            self.content = data["content"] or ""
        for key in ("embeds", "components"):
            if key in data:
                setattr(self, key, list(data[key] or []))
        if edit:
            self.edited_at = time.monotonic()
            flags = int(data.get("flags") or 0) if "flags" in data else self.flags
            self.flags = (self.flags & EPHEMERAL) | (flags & ~(EPHEMERAL | LOADING))
        elif data.get("flags") is not None:
            self.flags = int(data["flags"])
        new: list[AttachmentRecord] = []
        if "attachments" in data or uploads:
            entries = data.get("attachments")
            if entries is None:
                entries = [{"id": index} for index in sorted(uploads)]
            existing = {att.id: att for att in self.attachments}
            kept: list[AttachmentRecord] = []
            for entry in entries:
                key = int(entry["id"])
                if key in existing:
                    kept.append(existing[key])
                elif key in uploads:
                    name, blob = uploads[key]
                    att = AttachmentRecord(next_snowflake(), entry.get("filename") or name, blob,
                                           entry.get("description"))
                    kept.append(att)
                    new.append(att)
            self.attachments = kept
        for key in ("tts", "allowed_mentions", "poll", "message_reference", "sticker_ids"):
            if key in data:
                self.extra[key] = data[key]
        return new

    def to_payload(self, world: World, cdn: str) -> JSON:
        """Discord message object as the REST API returns it."""
        def iso(ts: float) -> str:
            return datetime.fromtimestamp(ts, UTC).isoformat()

        edited = None if self.edited_at is None else iso(
            time.time() - (time.monotonic() - self.edited_at))
        data: JSON = {
            "id": str(self.id), "channel_id": str(self.channel_id),
            "guild_id": str(world.guild_id), "author": world.user_payload(self.author_id),
            "content": self.content, "timestamp": iso(self._created_wall),
            "edited_timestamp": edited, "tts": bool(self.extra.get("tts")),
            "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [a.to_payload(cdn, self.channel_id) for a in self.attachments],
            "embeds": self.embeds, "components": self.components, "pinned": False,
            "type": 0 if self.interaction_id is None else 20, "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = data["application_id"] = str(self.webhook_id)
        return data


@dataclass
class ResponseEvent:
    """One REST call the bot made for an interaction (callback, edit, follow-up, ...)."""

    #: callback, followup, {get,edit,delete}_original or {get,edit,delete}_message
    kind: str
    elapsed: float  #: seconds after the INTERACTION_CREATE dispatch
    status: int  #: HTTP status the stand-in answered
    body: JSON = field(default_factory=dict)  #: request JSON (``payload_json`` for multipart)
    message_id: int | None = None
    attachments: list[AttachmentRecord] = field(default_factory=list)  #: files uploaded here

    @property
    def type(self) -> int | None:
        """Callback type: 4 message, 5 deferred, 6 deferred update, 7 update, 8 choices, 9 modal."""
        return self.body.get("type") if self.kind == "callback" else None

    @property
    def data(self) -> JSON:
        """The message-ish part: ``body["data"]`` for callbacks, else the body."""
        return (self.body.get("data") or {}) if self.kind == "callback" else self.body


class InteractionRecord:
    """Everything the bot did in answer to one dispatched interaction; fills in as it happens."""

    def __init__(self, payload: JSON, notifier: Notifier, *, deadline: float, label: str) -> None:
        self.payload = payload  #: the INTERACTION_CREATE ``d`` the bot received
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]  #: 2 command, 3 component, 4 autocomplete, 5 modal
        self.channel_id = int(payload["channel_id"])
        self.label = label  #: "forward start" or the clicked custom_id
        self.deadline = deadline
        self.dispatched_at = 0.0  #: ``time.monotonic()`` of the dispatch
        self.initial: ResponseEvent | None = None  #: the accepted first callback
        self.events: list[ResponseEvent] = []  #: every call in order, rejected ones included
        self.rejected: list[ResponseEvent] = []  #: callbacks answered 404/400
        self.original: MessageRecord | None = None
        self.followups: list[MessageRecord] = []
        self.choices: list[JSON] | None = None  #: autocomplete answer
        self.modal: JSON | None = None  #: modal the bot opened
        self.late = False  #: a callback arrived after the deadline
        self._notifier = notifier

    def elapsed(self) -> float:
        """Seconds since dispatch."""
        return time.monotonic() - self.dispatched_at

    @property
    def expired(self) -> bool:
        """True if the first callback came (or still has not come) after the deadline."""
        overdue = self.initial is None and self.dispatched_at and self.elapsed() > self.deadline
        return self.late or bool(overdue)

    @property
    def callback_type(self) -> int | None:
        """Type of the accepted initial callback, if any."""
        return None if self.initial is None else self.initial.type

    @property
    def ephemeral(self) -> bool:
        """Whether the initial response carried flags & 64."""
        return self.initial is not None and bool(int(self.initial.data.get("flags") or 0) & 64)

    @property
    def deferred(self) -> bool:
        """Whether the initial response was a defer (type 5 or 6)."""
        return self.callback_type in (5, 6)

    @property
    def messages(self) -> list[MessageRecord]:
        """Original response (if any) followed by distinct follow-ups."""
        out = [self.original] if self.original is not None else []
        return out + [m for m in self.followups if all(m is not o for o in out)]

    @property
    def final(self) -> MessageRecord | None:
        """The most recently created or edited, not deleted, message of this interaction."""
        live = [m for m in self.messages if not m.deleted and not m.loading]
        return max(live, key=lambda m: m.edited_at or m.created_at, default=None)

    @property
    def attachments(self) -> list[AttachmentRecord]:
        """Current attachments over all messages of this interaction."""
        return [a for m in self.messages if not m.deleted for a in m.attachments]

    @property
    def answered(self) -> bool:
        """The user sees a real answer (a deferred reply only counts once it was filled in)."""
        kind = self.callback_type
        if kind == 5:
            return self.final is not None
        if kind == 6:
            return any(e.kind in ("edit_original", "followup", "edit_message") for e in self.events)
        return kind is not None

    def describe(self) -> str:
        """One-line state summary used in timeout messages."""
        events = ", ".join(f"{e.kind}{'' if e.type is None else e.type}@{e.elapsed:.2f}s"
                           f"->{e.status}" for e in self.events)
        return (f"interaction {self.label!r} (type {self.type}): expired={self.expired}, "
                f"events=[{events}]")

    async def wait_initial(self, timeout: float = 5.0) -> ResponseEvent:
        """Wait (bounded) for the first accepted callback; raise if the deadline passed."""
        await self.wait_done(lambda r: r.initial is not None, timeout=timeout)
        assert self.initial is not None
        return self.initial

    async def wait_done(
        self, predicate: Callable[[InteractionRecord], bool] | None = None, timeout: float = 5.0,
        *, fail_on_expiry: bool = True,
    ) -> InteractionRecord:
        """Wait until ``predicate(self)`` (default: :attr:`answered`) holds, at most ``timeout`` s.

        Raises :class:`InteractionExpiredError` as soon as the interaction expires without the
        predicate holding (unless ``fail_on_expiry=False``), and :class:`StandinTimeout` when
        time runs out.
        """
        check = predicate or (lambda r: r.answered)

        def ready() -> bool:
            if check(self):
                return True
            if fail_on_expiry and self.expired:
                raise InteractionExpiredError(f"3-second deadline missed: {self.describe()}")
            return False

        await self._notifier.wait_for(ready, timeout=timeout, what=self.describe)
        return self


# -- building INTERACTION_CREATE payloads ---------------------------------------------------------
@dataclass(frozen=True)
class UserRef:
    """Option value of type USER (6) when the command was not synced (else a plain id works)."""

    id: int


@dataclass(frozen=True)
class ChannelRef:
    """Option value of type CHANNEL (7) when the command was not synced."""

    id: int


@dataclass(frozen=True)
class RoleRef:
    """Option value of type ROLE (8) when the command was not synced."""

    id: int


Options = Mapping[str, Any] | Sequence[JSON] | None
Resolved = dict[str, dict[str, JSON]]
_PY_TYPES: dict[type, int] = {UserRef: 6, ChannelRef: 7, RoleRef: 8, bool: 5, int: 4, float: 10,
                              str: 3}


def command_data(
    world: World, name: str, options: Options, *, command: JSON | None, command_id: str,
    focused: str | None = None, guild_command: bool | None = None,
) -> JSON:
    """``data`` of a chat-input/autocomplete interaction, with subcommand nesting and resolved.

    ``name`` is the command path ("forward start" or "admin risk set"); ``command`` is the
    synced root command (its option schema supplies option types) or None.
    """
    root, *path = name.split()
    schema = None if command is None else command.get("options", [])
    resolved: Resolved = {}
    wrappers: list[JSON] = []
    for depth, part in enumerate(path):
        wrappers.append({"type": 2 if depth == 0 and len(path) == 2 else 1, "name": part})
        sub = next((o for o in schema or [] if o["name"] == part), None)
        schema = None if sub is None else sub.get("options", [])
    nested = _options(world, schema, options, resolved, focused)
    for wrapper in reversed(wrappers):
        nested = [wrapper | {"options": nested}]
    data: JSON = {"id": command_id, "name": root, "type": 1, "options": nested}
    if (command is not None and "guild_id" in command) or guild_command:
        data["guild_id"] = str(world.guild_id)
    if resolved:
        data["resolved"] = resolved
    return data


def _options(
    world: World, schema: list[JSON] | None, options: Options, resolved: Resolved,
    focused: str | None,
) -> list[JSON]:
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [dict(o) for o in options]
    types = {o["name"]: o["type"] for o in schema or []}
    out: list[JSON] = []
    for name, value in options.items():
        kind = types.get(name) or _PY_TYPES.get(type(value))
        if kind is None:
            raise TypeError(f"cannot infer the option type of {name}={value!r}")
        if name == focused:
            out.append({"name": name, "type": kind, "value": value, "focused": True})
        else:
            out.append({"name": name, "type": kind,
                        "value": _value(world, kind, value, resolved)})
    return out


def _value(world: World, kind: int, value: Any, resolved: Resolved) -> Any:
    if kind not in (6, 7, 8, 9):
        return {5: bool, 4: int, 10: float, 3: str}.get(kind, lambda v: v)(value)
    snowflake = int(getattr(value, "id", value))
    if kind == 8 or (kind == 9 and (isinstance(value, RoleRef) or snowflake in world.roles)):
        role = world.role_payload(world.roles[snowflake])
        resolved.setdefault("roles", {})[str(snowflake)] = role
    elif kind == 7:
        try:
            channel = world.channel_payload(snowflake, with_permissions=True)
        except KeyError:
            raise ValueError(f"unknown channel {snowflake}") from None
        resolved.setdefault("channels", {})[str(snowflake)] = channel
    else:
        resolved.setdefault("users", {})[str(snowflake)] = world.user_payload(snowflake)
        member = world.member_payload(snowflake, with_user=False, with_permissions=True)
        resolved.setdefault("members", {})[str(snowflake)] = member
    return str(snowflake)
