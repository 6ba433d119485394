"""``echosearch users`` and ``echosearch tokens``: the accounts of the UI and the API.

Every person logs in as themselves (UI: name and password) and every system calls the API with its
own token; both act with their account's role (viewer, indexer, admin). Each change is an audit row
naming the OS user who made it.
"""

from __future__ import annotations

import sys

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.store.schema import ROLES

role_choice = click.Choice(ROLES)


def _accounts(data):  # noqa: ANN001, ANN202
    from echosearch.accounts import Accounts
    from echosearch.paths import data_dir
    from echosearch.store.db import has_database, open_db

    root = data_dir(data)
    if not has_database(root):
        raise UsageError(f"no echosearch index in {root} (run `echosearch index PATH --data {root}` first)")
    return Accounts(open_db(root))


def _who() -> str:
    from echosearch.whoami import os_user

    return f"cli:{os_user()}"


def _read_password(from_stdin: bool, name: str) -> str:
    """A password from one line of stdin, or typed twice at a terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: nothing on stdin")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to type a password at: give --password-stdin (or --no-password)")
    return click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)


def _print_user(info) -> None:  # noqa: ANN001
    state = "active" if info.active else "disabled"
    extra = []
    if not info.has_password:
        extra.append("no password (API tokens only)")
    if info.locked_until:
        extra.append(f"locked until {info.locked_until}")
    if info.last_login_at:
        extra.append(f"last login {info.last_login_at}")
    tail = f"  ({'; '.join(extra)})" if extra else ""
    click.echo(f"{info.name:<24} {info.role:<8} {state:<9} {info.tokens} tokens{tail}")


@cli.group()
def users() -> None:
    """Accounts of the UI and the API: add, list, disable/enable, reset a password, change a role."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=role_choice,
    required=True,
    help="viewer: search; indexer: + index/relabel; admin: + paths, failures, audit.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.option("--no-password", is_flag=True, help="No UI login: an account for API tokens only.")
@data_option
@json_option
def users_add(name, role, password_stdin, no_password, data, as_json) -> None:
    """Add an account (asks for its password at a terminal)."""
    if password_stdin and no_password:
        raise click.UsageError("give either --password-stdin or --no-password")
    accounts = _accounts(data)
    try:
        password = None if no_password else _read_password(password_stdin, name)
        info = accounts.add_user(name, role, password)
        accounts.record("users_add", {"user": name, "role": role}, _who())
    finally:
        accounts.db.close()
    if as_json:
        emit_json(info.to_dict())
    else:
        click.echo(f"added {name} ({role})", err=True)


@users.command("list")
@data_option
@json_option
def users_list(data, as_json) -> None:
    """The accounts, their roles and state."""
    accounts = _accounts(data)
    try:
        infos = accounts.users()
    finally:
        accounts.db.close()
    if as_json:
        emit_json({"users": [i.to_dict() for i in infos]})
        return
    if not infos:
        click.echo(
            "no accounts (the UI opens without a login on this machine only; add one with `echosearch users add`)"
        )
    for info in infos:
        _print_user(info)


def _change(data, name: str, action: str, change, as_json: bool, said: str) -> None:  # noqa: ANN001
    accounts = _accounts(data)
    try:
        info = change(accounts)
        accounts.record(action, {"user": name}, _who())
    finally:
        accounts.db.close()
    if as_json:
        emit_json(info.to_dict())
    else:
        click.echo(said, err=True)


@users.command("disable")
@click.argument("name")
@data_option
@json_option
def users_disable(name, data, as_json) -> None:
    """Stop an account: its logins and every one of its tokens are refused at once."""
    _change(data, name, "users_disable", lambda a: a.set_disabled(name, True), as_json, f"disabled {name}")


@users.command("enable")
@click.argument("name")
@data_option
@json_option
def users_enable(name, data, as_json) -> None:
    """Enable a disabled account again (its unrevoked, unexpired tokens work again)."""
    _change(data, name, "users_enable", lambda a: a.set_disabled(name, False), as_json, f"enabled {name}")


@users.command("reset")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from one line of stdin.")
@data_option
@json_option
def users_reset(name, password_stdin, data, as_json) -> None:
    """Set a new password for an account (also lifts a lockout after failed logins)."""
    password = _read_password(password_stdin, name)
    _change(
        data,
        name,
        "users_reset",
        lambda a: a.reset_password(name, password),
        as_json,
        f"new password for {name}",
    )


@users.command("role")
@click.argument("name")
@click.argument("role", type=role_choice)
@data_option
@json_option
def users_role(name, role, data, as_json) -> None:
    """Change an account's role."""
    _change(data, name, "users_role", lambda a: a.set_role(name, role), as_json, f"{name} is now {role}")


@cli.group()
def tokens() -> None:
    """API tokens: create (shown once), list, revoke."""


@tokens.command("create")
@click.argument("name", metavar="USER")
@click.option("--expires", default="90d", show_default=True, help="Lifetime: 30d, 12h, 2w, ... or never.")
@click.option("--label", default=None, help="What the token is for (e.g. pacs-plugin).")
@data_option
@json_option
def tokens_create(name, expires, label, data, as_json) -> None:
    """A new API token for USER, printed once (only its SHA-256 is stored)."""
    from echosearch.accounts import parse_duration

    lifetime = parse_duration(expires)
    accounts = _accounts(data)
    try:
        new = accounts.create_token(name, lifetime, label)
        accounts.record("tokens_create", {"user": name, "token_id": new.info.id, "expires": expires}, _who())
    finally:
        accounts.db.close()
    if as_json:
        emit_json(new.to_dict())
        return
    click.echo(new.token)
    until = new.info.expires_at or "never"
    click.echo(
        f"token {new.info.id} for {name} (expires {until}); it is shown only now: keep it secret", err=True
    )


@tokens.command("list")
@click.option("--user", "name", default=None, help="Only this account's tokens.")
@data_option
@json_option
def tokens_list(name, data, as_json) -> None:
    """Tokens (never the secret): id, account, prefix, state, expiry, last use."""
    accounts = _accounts(data)
    try:
        infos = accounts.tokens(name)
    finally:
        accounts.db.close()
    if as_json:
        emit_json({"tokens": [i.to_dict() for i in infos]})
        return
    if not infos:
        click.echo("no tokens")
    for t in infos:
        click.echo(
            f"{t.id:>4}  {t.user:<20} {t.prefix}…  {t.state:<13} expires {t.expires_at or 'never'}  "
            f"last used {t.last_used_at or 'never'}" + (f"  ({t.label})" if t.label else "")
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
@data_option
@json_option
def tokens_revoke(token_id, data, as_json) -> None:
    """Revoke a token by its id (`tokens list`): the API refuses it from the next request on."""
    accounts = _accounts(data)
    try:
        info = accounts.revoke_token(token_id)
        accounts.record("tokens_revoke", {"token_id": token_id, "user": info.user}, _who())
    finally:
        accounts.db.close()
    if as_json:
        emit_json(info.to_dict())
    else:
        click.echo(f"revoked token {token_id} of {info.user}", err=True)
