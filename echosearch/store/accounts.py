"""Every database query about accounts: users and their API tokens (:mod:`echosearch.accounts` holds
the rules: roles, password and token hashing, expiry, lockout).

Each function takes an open session (``with db.session() as s:``) and does one thing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from echosearch.store.schema import ApiToken, User


def user_by_name(s: Session, name: str) -> User | None:
    return s.scalars(select(User).where(User.name == name)).first()


def user_by_id(s: Session, user_id: int) -> User | None:
    return s.get(User, user_id)


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.name)))


def count_active_users(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(User).where(User.disabled_at.is_(None))) or 0)


def add_user(s: Session, name: str, role: str, password_hash: str | None) -> User:
    user = User(name=name, role=role, password_hash=password_hash, failed_logins=0)
    s.add(user)
    s.flush()
    return user


def record_failed_login(s: Session, user_id: int, lock_after: int, lock_until: dt.datetime) -> User:
    """Count one more failed login of an account; lock it until ``lock_until`` at ``lock_after``
    failures in a row (the counter starts again once the lock is over). One UPDATE, so two UI
    processes counting at once never lose a failure."""
    s.execute(update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1))
    user = s.get(User, user_id, populate_existing=True)
    if user.failed_logins >= lock_after:
        user.locked_until = lock_until
        user.failed_logins = 0
    s.flush()
    return user


def record_login(s: Session, user_id: int, when: dt.datetime) -> None:
    s.execute(
        update(User).where(User.id == user_id).values(failed_logins=0, locked_until=None, last_login_at=when)
    )


def add_token(
    s: Session,
    user_id: int,
    token_sha256: str,
    prefix: str,
    label: str | None,
    expires_at: dt.datetime | None,
) -> ApiToken:
    token = ApiToken(
        user_id=user_id, token_sha256=token_sha256, prefix=prefix, label=label, expires_at=expires_at
    )
    s.add(token)
    s.flush()
    return token


def token_by_sha256(s: Session, token_sha256: str) -> ApiToken | None:
    """A token with its user loaded (the API checks both on every request)."""
    stmt = select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_sha256 == token_sha256)
    return s.scalars(stmt).first()


def token_by_id(s: Session, token_id: int) -> ApiToken | None:
    return s.scalars(
        select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.id == token_id)
    ).first()


def list_tokens(s: Session, user_id: int | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(s.scalars(stmt))


def touch_token(s: Session, token_id: int, when: dt.datetime) -> None:
    s.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))


def revoke_tokens_of(s: Session, user_id: int, when: dt.datetime) -> int:
    """Revoke every live token of a user; how many."""
    done = s.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=when)
    )
    return int(done.rowcount or 0)
