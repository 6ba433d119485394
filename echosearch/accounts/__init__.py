"""Accounts, roles, API tokens and login throttling, shared by the UI, the API and the CLI
(:mod:`echosearch.accounts.service` explains the rules)."""

from echosearch.accounts.passwords import (
    MIN_PASSWORD_LENGTH,
    check_password_rules,
    hash_password,
    verify_password,
)
from echosearch.accounts.service import (
    AccountError,
    AccountInfo,
    Accounts,
    Caller,
    LoginResult,
    NewToken,
    TokenInfo,
    os_user,
    parse_duration,
    role_allows,
)
from echosearch.accounts.throttle import FailureThrottle, RateLimiter
from echosearch.store.schema import ROLES

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "AccountError",
    "AccountInfo",
    "Accounts",
    "Caller",
    "FailureThrottle",
    "LoginResult",
    "NewToken",
    "RateLimiter",
    "TokenInfo",
    "check_password_rules",
    "hash_password",
    "os_user",
    "parse_duration",
    "role_allows",
    "verify_password",
]
