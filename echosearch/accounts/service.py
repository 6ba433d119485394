"""Accounts, roles and API tokens, shared by the UI, the API and the CLI.

- A **user** has a name, a role and (for the UI) a password, stored as an scrypt hash only.
- **Roles** are ordered: ``viewer`` searches; ``indexer`` may also start indexing and relabelling
  through the API; ``admin`` may also read file paths, the failures and the audit log.
- An **API token** belongs to a user and acts with the user's role. It is 256 random bits, shown
  once, stored as its SHA-256; it may expire, and is revoked one by one. A disabled user's logins
  and tokens stop working at once (enabling the account again brings its tokens back).
- **Logins** (the UI's) are throttled twice: five failures in a row lock the account for five
  minutes, in the database, so every UI process sees it (an unknown name is locked the same way, in
  memory, so a lock says nothing about whether a name exists); ten failures a minute from one
  client lock that client for a minute. Every login, failed or not, is an audit row.

Database queries are in :mod:`echosearch.store.accounts`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from echosearch.accounts.passwords import check_password_rules, hash_password, verify_password
from echosearch.accounts.throttle import FailureThrottle
from echosearch.errors import UsageError
from echosearch.store import accounts as store
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import ROLES, ApiToken, User, utcnow
from echosearch.whoami import os_user  # noqa: F401 - part of this module's API

TOKEN_PREFIX = "es_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: last_used_at is written at most this often per token (not a database write per request).
TOUCH_EVERY = dt.timedelta(seconds=60)


class AccountError(UsageError):
    """An account or token that does not exist, or a request the rules refuse."""


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (roles are ordered viewer < indexer < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return role


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise AccountError(
            f"bad account name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def parse_duration(text: str | None) -> dt.timedelta | None:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s`` -> a timedelta; ``never`` (or None) -> None."""
    if text is None or text.strip().lower() in ("never", "none", ""):
        return None
    m = _DURATION_RE.match(text.lower())
    if not m or int(m.group(1)) <= 0:
        raise UsageError(f"bad duration {text!r} (e.g. 30d, 12h, 90m, 2w, or never)")
    return dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def aware(when: dt.datetime | None) -> dt.datetime | None:
    """A stored time as a UTC-aware datetime (SQLite hands them back naive)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=dt.UTC)


def _iso(when: dt.datetime | None) -> str | None:
    when = aware(when)
    return when.isoformat(timespec="seconds") if when else None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Caller:
    """Who is asking: an account name, its role, and the channel (``ui``, ``api``, ``cli``)."""

    name: str
    role: str
    channel: str = "api"
    token_id: int | None = None

    @property
    def who(self) -> str:
        """The audit log's name for this caller: ``channel:account``."""
        return f"{self.channel}:{self.name}"

    def may(self, needed: str) -> bool:
        return role_allows(self.role, needed)


@dataclass
class AccountInfo:
    name: str
    role: str
    active: bool
    has_password: bool
    created_at: str | None
    last_login_at: str | None
    locked_until: str | None
    tokens: int  # live tokens (not revoked, not expired)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TokenInfo:
    id: int
    user: str
    prefix: str
    label: str | None
    state: str  # active | expired | revoked | user disabled
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NewToken:
    token: str  # the secret: shown once, never stored
    info: TokenInfo

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, **self.info.to_dict()}


@dataclass
class LoginResult:
    caller: Caller | None
    reason: str  # ok | bad_credentials | locked | client_locked
    retry_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.caller is not None


def _token_state(t: ApiToken, now: dt.datetime) -> str:
    if t.revoked_at is not None:
        return "revoked"
    if t.expires_at is not None and aware(t.expires_at) <= now:
        return "expired"
    if t.user.disabled_at is not None:
        return "user disabled"
    return "active"


def _token_info(t: ApiToken, now: dt.datetime) -> TokenInfo:
    return TokenInfo(
        id=t.id,
        user=t.user.name,
        prefix=t.prefix,
        label=t.label,
        state=_token_state(t, now),
        created_at=_iso(t.created_at),
        expires_at=_iso(t.expires_at),
        revoked_at=_iso(t.revoked_at),
        last_used_at=_iso(t.last_used_at),
    )


class Accounts:
    """The accounts of one data dir (its database). Keep one per process: the in-memory throttles
    (unknown names, clients) live in it."""

    #: Failed logins in a row that lock an account, and for how long.
    lock_after = 5
    lock_for = dt.timedelta(minutes=5)

    def __init__(self, db: Database, *, client_failures: int = 10, client_window_s: float = 60.0) -> None:
        self.db = db
        self.unknown_names = FailureThrottle(self.lock_after, 15 * 60.0, self.lock_for.total_seconds())
        self.clients = FailureThrottle(client_failures, client_window_s, client_window_s)

    # ------------------------------------------------------------ users

    def has_accounts(self) -> bool:
        """Whether any account is enabled (then the UI asks everyone to log in)."""
        with self.db.session() as s:
            return store.count_active_users(s) > 0

    def _user(self, s, name: str) -> User:  # noqa: ANN001
        user = store.user_by_name(s, name)
        if user is None:
            raise AccountError(f"no account {name!r} (see `echosearch users list`)")
        return user

    def _info(self, s, user: User) -> AccountInfo:  # noqa: ANN001
        now = utcnow()
        live = sum(1 for t in user.tokens if _token_state(t, now) == "active")
        locked = aware(user.locked_until)
        return AccountInfo(
            name=user.name,
            role=user.role,
            active=user.disabled_at is None,
            has_password=bool(user.password_hash),
            created_at=_iso(user.created_at),
            last_login_at=_iso(user.last_login_at),
            locked_until=_iso(locked) if locked and locked > now else None,
            tokens=live,
        )

    def add_user(self, name: str, role: str, password: str | None = None) -> AccountInfo:
        check_name(name)
        check_role(role)
        if password is not None:
            check_password_rules(password)
        hashed = hash_password(password) if password is not None else None
        with self.db.session() as s:
            if store.user_by_name(s, name) is not None:
                raise AccountError(
                    f"account {name!r} exists (`echosearch users reset {name}` sets its password)"
                )
            return self._info(s, store.add_user(s, name, role, hashed))

    def users(self) -> list[AccountInfo]:
        with self.db.session() as s:
            return [self._info(s, u) for u in store.list_users(s)]

    def user(self, name: str) -> AccountInfo:
        with self.db.session() as s:
            return self._info(s, self._user(s, name))

    def active_role(self, name: str) -> str | None:
        """The role of an enabled account, None for a disabled or unknown one (the UI asks on every
        rerun, so disabling an account ends its open sessions too)."""
        with self.db.session() as s:
            user = store.user_by_name(s, name)
            return user.role if user is not None and user.disabled_at is None else None

    def set_disabled(self, name: str, disabled: bool = True) -> AccountInfo:
        with self.db.session() as s:
            user = self._user(s, name)
            user.disabled_at = (user.disabled_at or utcnow()) if disabled else None
            return self._info(s, user)

    def set_role(self, name: str, role: str) -> AccountInfo:
        check_role(role)
        with self.db.session() as s:
            user = self._user(s, name)
            user.role = role
            return self._info(s, user)

    def reset_password(self, name: str, password: str) -> AccountInfo:
        """A new password; also lifts a lockout."""
        check_password_rules(password)
        hashed = hash_password(password)
        with self.db.session() as s:
            user = self._user(s, name)
            user.password_hash, user.failed_logins, user.locked_until = hashed, 0, None
            return self._info(s, user)

    # ------------------------------------------------------------ tokens

    def create_token(
        self, name: str, expires_in: dt.timedelta | None = None, label: str | None = None
    ) -> NewToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        expires_at = utcnow() + expires_in if expires_in is not None else None
        with self.db.session() as s:
            user = self._user(s, name)
            if user.disabled_at is not None:
                raise AccountError(f"account {name!r} is disabled (`echosearch users enable {name}`)")
            row = store.add_token(s, user.id, token_sha256(token), token[:10], label, expires_at)
            s.refresh(row, ["user"])
            return NewToken(token=token, info=_token_info(row, utcnow()))

    def tokens(self, name: str | None = None) -> list[TokenInfo]:
        now = utcnow()
        with self.db.session() as s:
            user_id = self._user(s, name).id if name is not None else None
            return [_token_info(t, now) for t in store.list_tokens(s, user_id)]

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self.db.session() as s:
            row = store.token_by_id(s, token_id)
            if row is None:
                raise AccountError(f"no token {token_id} (see `echosearch tokens list`)")
            row.revoked_at = row.revoked_at or utcnow()
            return _token_info(row, utcnow())

    def authenticate_token(self, token: str) -> Caller | None:
        """The caller a bearer token stands for, or None (unknown, expired, revoked, user disabled)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        now = utcnow()
        with self.db.session() as s:
            row = store.token_by_sha256(s, token_sha256(token))
            if row is None or _token_state(row, now) != "active":
                return None
            caller = Caller(row.user.name, row.user.role, "api", token_id=row.id)
            last = aware(row.last_used_at)
            if last is None or now - last > TOUCH_EVERY:
                store.touch_token(s, row.id, now)
            return caller

    # ------------------------------------------------------------ UI logins

    def login(self, name: str, password: str, *, client: str = "unknown", channel: str = "ui") -> LoginResult:
        """Check a name and password with both throttles (see the module doc); audit the attempt."""
        name, client = (name or "").strip()[:64], str(client)[:64]
        wait = self.clients.retry_after(client)
        if wait > 0:
            self._audit_login(None, name, client, "client_locked", channel)
            return LoginResult(None, "client_locked", wait)
        now = utcnow()
        with self.db.session() as s:
            user = store.user_by_name(s, name) if name else None
            user_id, stored = (user.id, user.password_hash) if user is not None else (None, None)
            locked = aware(user.locked_until) if user is not None else None
            disabled = user is not None and user.disabled_at is not None
            role = user.role if user is not None else None
        if user_id is None:
            wait = self.unknown_names.retry_after(name.lower())
        else:
            wait = (locked - now).total_seconds() if locked and locked > now else 0.0
        if wait > 0:  # a locked account is not even checked: guessing on meanwhile learns nothing
            self._audit_login(name if user_id is not None else None, name, client, "locked", channel)
            return LoginResult(None, "locked", wait)
        good = verify_password(password or "", stored) and not disabled
        if good:
            with self.db.session() as s:
                store.record_login(s, user_id, now)
            self.clients.succeeded(client)
            self._audit_login(name, name, client, "ok", channel)
            return LoginResult(Caller(name, role, channel), "ok")
        client_wait = self.clients.failed(client)
        if user_id is None:
            wait = self.unknown_names.failed(name.lower())
        else:
            with self.db.session() as s:
                row = store.record_failed_login(s, user_id, self.lock_after, now + self.lock_for)
                until = aware(row.locked_until)
                wait = (until - now).total_seconds() if until and until > now else 0.0
        reason = "disabled" if disabled else "bad_credentials"
        self._audit_login(name if user_id is not None else None, name, client, reason, channel)
        if client_wait > 0:
            return LoginResult(None, "client_locked", client_wait)
        return LoginResult(None, "locked" if wait > 0 else "bad_credentials", wait)

    def record(self, action: str, query: dict[str, Any], who: str | None) -> None:
        """An audit row for a change to the accounts (who added, disabled, revoked what)."""
        with self.db.session() as s:
            q.audit(s, action=action, query=query, who=who)

    def _audit_login(self, known: str | None, typed: str, client: str, outcome: str, channel: str) -> None:
        """One audit row per attempt. A name that is no account is kept only as a hash prefix (it may
        be a password typed into the wrong box)."""
        query: dict[str, Any] = {"client": client[:64], "outcome": outcome}
        if known:
            who = f"{channel}:{known}"
        else:
            who = f"{channel}:?"
            query["name_sha256"] = hashlib.sha256(typed.encode("utf-8")).hexdigest()[:12]
        self.record("login" if outcome == "ok" else "login_failed", query, who)
