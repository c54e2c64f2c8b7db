"""Operator commands on the database: accounts, keys, credits, usage, db, purge, dev-key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alttext.cli.common import err, in_transaction, reads, settings, with_database
from alttext.cli.group import Group, quick

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from alttext.accounts.models import Account, ApiKey
    from alttext.config import Settings
    from alttext.privacy.retention import PurgeReport
    from alttext.usage.service import UsageRow

accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True, cls=Group)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True, cls=Group)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True, cls=Group)
credits_app = typer.Typer(help="Manage credits.", no_args_is_help=True, cls=Group)


def register(app: typer.Typer) -> None:
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(keys_app, name="keys")
    app.add_typer(credits_app, name="credits")
    app.add_typer(db_app, name="db")
    app.command()(usage)
    app.command()(purge)
    app.command("dev-key", hidden=True)(dev_key_command)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


@accounts_app.command("create")
@quick
def accounts_create(
    email: str,
    credits: Annotated[int | None, typer.Option(help="Starting credits (exactly N).")] = None,
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create an account."""
    from alttext.accounts.service import create_account
    from alttext.billing.ledger import grant_starting_credits

    grant = settings().free_credits if credits is None else credits

    async def run(session: AsyncSession) -> Account:
        account = await create_account(session, email, name=name)
        await grant_starting_credits(session, account, grant)
        return account

    account = in_transaction(run)
    typer.echo(f"{account.id}\t{account.email}\t{account.credits_balance} credits")


@accounts_app.command("list")
@quick
def accounts_list(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Accounts, oldest first: id, email, status, balance, created."""
    from alttext.accounts.service import list_accounts

    async def run(session: AsyncSession) -> list[Account]:
        return await list_accounts(session, limit=limit)

    accounts = reads(run)
    if not accounts:
        err.print("No accounts yet: alttext accounts create EMAIL")
        return
    for a in accounts:
        if as_json:
            row = {
                "id": a.id,
                "email": a.email,
                "status": a.status,
                "credits": a.credits_balance,
                "created_at": a.created_at.isoformat(),
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(
                f"{a.id}\t{a.email}\t{a.status}\t{a.credits_balance} credits\t{_when(a.created_at)}"
            )


@accounts_app.command("export")
def accounts_export(email: str) -> None:
    """Everything held about an account, as JSON on stdout (GDPR Art. 15 and 20)."""
    from alttext.accounts.service import require_account_by_email
    from alttext.privacy.audit import record
    from alttext.privacy.export import export_account

    async def run(session: AsyncSession) -> dict[str, Any]:
        account = await require_account_by_email(session, email)
        await record(session, account.id, "export", actor="admin")
        return await export_account(session, account.id)

    typer.echo(json.dumps(in_transaction(run), ensure_ascii=False, indent=2))


@accounts_app.command("erase")
def accounts_erase(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Erase an account (GDPR Art. 17): keys, personal data and the Stripe customer go; only
    the accounting records the law requires stay, under an anonymous id."""
    from alttext.accounts.service import require_account_by_email
    from alttext.privacy.erasure import erase_account

    if not yes:
        err.print("[red]Erasure cannot be undone; add --yes to confirm.[/red]")
        raise typer.Exit(2)

    async def run(sessions: async_sessionmaker[AsyncSession], current: Settings) -> dict[str, int]:
        async with sessions() as session:
            account = await require_account_by_email(session, email)
        # No result cache of our own: erase_account clears the account's entries in Redis when
        # one is configured (an API process's in-process cache expires them: its docstring).
        summary = await erase_account(
            sessions, current, account.id, confirm=account.email, actor="admin"
        )
        return summary.kept

    kept = with_database(run)
    typer.echo(json.dumps({"erased": True, "kept": kept}))


@keys_app.command("create")
@quick
def keys_create(email: str, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Create an API key; the secret is printed alone on the last line, once."""
    from alttext.accounts.service import create_key, require_account_by_email

    async def run(session: AsyncSession) -> tuple[str, str]:
        account = await require_account_by_email(session, email)
        api_key, secret = await create_key(session, account.id, name=name)
        return api_key.id, secret

    key_id, secret = in_transaction(run)
    typer.echo(f"Created {key_id}. Store the secret now; it is not shown again:")
    typer.echo(secret)


@keys_app.command("list")
@quick
def keys_list(
    email: str,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """An account's API keys (never the secret): id, prefix, name, created, last used, state."""
    from alttext.accounts.service import list_keys, require_account_by_email

    async def run(session: AsyncSession) -> list[ApiKey]:
        account = await require_account_by_email(session, email)
        return await list_keys(session, account.id)

    keys = reads(run)
    if not keys:
        err.print(f"{email} has no API keys: alttext keys create {email}")
        return
    for k in keys:
        state = "revoked" if k.revoked_at is not None else "active"
        if as_json:
            row = {
                "id": k.id,
                "prefix": k.prefix,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(
                f"{k.id}\t{k.prefix}…\t{k.name or '-'}\tcreated {_when(k.created_at)}\t"
                f"last used {_when(k.last_used_at)}\t{state}"
            )


@keys_app.command("revoke")
@quick
def keys_revoke(key_id: str) -> None:
    """Revoke an API key at once."""
    from alttext.accounts.service import revoke_key

    api_key = in_transaction(lambda s: revoke_key(s, key_id))
    typer.echo(f"Revoked {api_key.id} ({api_key.prefix}…)")


@credits_app.command("grant")
@quick
def credits_grant(
    email: str,
    credits: Annotated[int, typer.Argument(help="Credits to add (1 to 10,000,000).")],
    reason: Annotated[str, typer.Option(help="Why: kept in the ledger.")],
) -> None:
    """Grant credits to an account (an admin ledger entry)."""
    from alttext.accounts.service import require_account_by_email
    from alttext.billing.credits import balance
    from alttext.billing.ledger import grant

    async def run(session: AsyncSession) -> tuple[str, int]:
        account = await require_account_by_email(session, email)
        entry = await grant(session, account.id, credits, reason=reason)
        return entry.id, await balance(session, account.id)

    entry_id, new_balance = in_transaction(run)
    typer.echo(f"Granted {credits} credits ({entry_id}); balance is now {new_balance}.")


# ignore_unknown_options: "-5" is the amount, not an option.
@credits_app.command("adjust", context_settings={"ignore_unknown_options": True})
@quick
def credits_adjust(
    email: str,
    credits: Annotated[
        int, typer.Argument(help="Credits to add or (negative) take away; never below zero.")
    ],
    reason: Annotated[str, typer.Option(help="Why: kept in the ledger.")],
) -> None:
    """Correct a balance either way (an `adjustment` ledger entry); a negative adjustment
    that would take the balance below zero is refused."""
    from alttext.accounts.service import require_account_by_email
    from alttext.billing.credits import balance
    from alttext.billing.ledger import adjust

    async def run(session: AsyncSession) -> tuple[str, int]:
        account = await require_account_by_email(session, email)
        entry = await adjust(session, account.id, credits, reason=reason)
        return entry.id, await balance(session, account.id)

    entry_id, new_balance = in_transaction(run)
    typer.echo(f"Adjusted by {credits:+d} credits ({entry_id}); balance is now {new_balance}.")


@credits_app.command("balance")
@quick
def credits_balance(email: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """An account's credit balance."""
    from alttext.accounts.service import require_account_by_email

    async def run(session: AsyncSession) -> tuple[str, int]:
        account = await require_account_by_email(session, email)
        return account.id, account.credits_balance

    account_id, credits = reads(run)
    if as_json:
        typer.echo(json.dumps({"account": account_id, "email": email, "credits": credits}))
    else:
        typer.echo(f"{email}\t{credits} credits")


@quick
def usage(
    email: str,
    days: Annotated[int, typer.Option(min=1, max=731, help="How many days back.")] = 30,
    granularity: Annotated[str, typer.Option(help="day or month")] = "day",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Usage of an account by period and model."""
    from datetime import UTC, datetime, timedelta

    from rich.console import Console
    from rich.table import Table

    from alttext.accounts.service import require_account_by_email
    from alttext.usage.service import aggregate

    if granularity not in ("day", "month"):
        raise typer.BadParameter("granularity must be day or month")
    end = datetime.now(UTC)

    async def run(session: AsyncSession) -> list[UsageRow]:
        account = await require_account_by_email(session, email)
        return await aggregate(
            session,
            account.id,
            start=end - timedelta(days=days),
            end=end + timedelta(seconds=1),
            granularity=granularity,  # type: ignore[arg-type]
        )

    rows = reads(run)
    if as_json:
        typer.echo(json.dumps([row.__dict__ for row in rows]))
        return
    table = Table(
        "period", "model", "requests", "failed", "credits", "tokens in", "tokens out", "upstream $"
    )
    for r in rows:
        table.add_row(
            r.period,
            r.model or "-",
            str(r.requests),
            str(r.failed),
            str(r.credits),
            str(r.input_tokens),
            str(r.output_tokens),
            f"{r.upstream_cost_usd:.6f}",
        )
    Console().print(table)


@db_app.command("upgrade")
@quick
def db_upgrade() -> None:
    """Apply database migrations."""
    from alttext.migrate import upgrade

    upgrade(settings().database_url)
    typer.echo("Database is up to date.")


def purge(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Apply the retention policy now (the API also runs it daily)."""
    from alttext.privacy.retention import purge as run_purge

    async def run(sessions: async_sessionmaker[AsyncSession], current: Settings) -> PurgeReport:
        return await run_purge(sessions, current)

    report = with_database(run)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    for name, removed in report.as_dict().items():
        typer.echo(f"{name.replace('_', ' ')}: {removed}")


@quick
def dev_key_command() -> None:
    """Development only: ensure the dev account and print its API key (make run)."""
    from alttext.dev_account import DEV_EMAIL, ensure_dev_account

    current = settings()
    if current.env == "production":
        err.print("[red]dev-key is refused in production.[/red]")
        raise typer.Exit(2)
    secret = in_transaction(lambda s: ensure_dev_account(s, current.secret_key))
    url = f"http://{current.host}:{current.port}"
    err.print(f"\n[bold]Development account[/bold] {DEV_EMAIL} — API key:")
    typer.echo(secret)
    err.print(
        f"Try it:\n  curl -s {url}/v1/alt-text -H 'Authorization: Bearer {secret}' "
        "-F image=@photo.jpg\n",
        soft_wrap=True,
        highlight=False,
    )
