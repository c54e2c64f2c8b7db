"""The ``alttext`` command line: serve, describe, eval, accounts, keys, db."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from alttext.accounts.models import Account
    from alttext.process import Services

from alttext.config import Settings
from alttext.db import transaction
from alttext.describe.errors import AppError
from alttext.describe.types import ROLES

app = typer.Typer(help="AltText API: alt text for images.", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
credits_app = typer.Typer(help="Manage credits.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(credits_app, name="credits")

err = Console(stderr=True)
T = TypeVar("T")
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
}


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _with_process(fn: Callable[[Services], Awaitable[T]], *, engine: bool = False) -> T:
    """Run ``fn`` with this process's parts (built and closed by ``open_process``)."""
    from alttext.process import open_process

    settings = _settings()

    async def run() -> T:
        async with open_process(settings, engine=engine) as services:
            return await fn(services)

    try:
        return asyncio.run(run())
    except AppError as exc:
        err.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


def _in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run(services: Services) -> T:
        async with transaction(services.sessions) as session:
            return await fn(session)

    return _with_process(run)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: ALTTEXT_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Default: ALTTEXT_PORT or 8000")] = None,
) -> None:
    """Run the API and the dashboard."""
    import uvicorn

    from alttext.app import create_app
    from alttext.http.server import uvicorn_options

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        **uvicorn_options(settings),
    )


def _collect_inputs(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item.startswith(("http://", "https://")):
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            out.extend(
                str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            out.append(item)
    return out


@app.command()
def describe(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or http(s) URLs.")],
    context: Annotated[str | None, typer.Option(help="Surrounding text or caption.")] = None,
    language: Annotated[str, typer.Option(help="BCP 47 tag(s), comma-separated.")] = "en",
    role: Annotated[
        str, typer.Option(help="auto, informative, decorative, functional, text or complex.")
    ] = "auto",
    max_length: Annotated[int, typer.Option(min=20, max=1000)] = 125,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Alt text for local files or URLs, without a server (same engine, same rules)."""
    from alttext.describe.fetch import fetch_image
    from alttext.generation.schemas import AltTextOptions
    from alttext.generation.service import describe_options

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    langs = [x.strip() for x in language.split(",") if x.strip()]
    try:
        checked = AltTextOptions(
            context=context,
            role=role,
            language=langs,
            max_length=max_length,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = describe_options(checked)
    targets = _collect_inputs(inputs)
    failures = 0

    async def run(services: Services) -> None:
        nonlocal failures
        rt = services.runtime
        with Progress(console=err, transient=True, disable=len(targets) < 2) as progress:
            task = progress.add_task("Describing", total=len(targets))
            for target in targets:
                result: dict[str, Any] = {"input": target}
                try:
                    if target.startswith(("http://", "https://")):
                        data = await fetch_image(target, rt.http, rt.fetch_limits)
                    else:
                        data = await asyncio.to_thread(Path(target).read_bytes)
                    d = await rt.engine.describe(data, options)
                    result.update(
                        alt_text=d.alt_text,
                        alt_texts=d.alt_texts,
                        role=d.role,
                        decorative=d.decorative,
                        needs_review=d.needs_review,
                        review_reasons=d.review_reasons,
                        model=d.model,
                    )
                except (AppError, OSError) as exc:
                    failures += 1
                    detail = exc.detail if isinstance(exc, AppError) else exc.strerror
                    result["error"] = {
                        "code": getattr(exc, "code", "io_error"),
                        "detail": detail,
                    }
                _print_result(result, as_json)
                progress.advance(task)

    _with_process(run, engine=True)
    if failures:
        raise typer.Exit(1)


def _print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    elif "error" in result:
        err.print(f"[red]{result['input']}: {result['error']['detail']}[/red]")
    else:
        flag = "  (needs review)" if result["needs_review"] else ""
        sys.stdout.write(f"{result['input']}\t{result['alt_text']}{flag}\n")
    sys.stdout.flush()


@app.command("eval")
def eval_command(
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model ids. Default: each model of ALTTEXT_MODELS."),
    ] = None,
    set_path: Annotated[
        Path | None,
        typer.Option("--set", help="A folder with cases.json, or the file. Default: ours."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full report as JSON.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Images in flight.")] = 4,
) -> None:
    """Compare models on an evaluation set: check pass rates, role and language accuracy,
    length, OCR agreement, latency and cost (docs/evaluation.md)."""
    from alttext.evaluation.cases import EvalSetError, load_set
    from alttext.evaluation.metrics import ModelSummary
    from alttext.evaluation.report import report_dict, table
    from alttext.evaluation.running import Evaluator
    from alttext.process import open_process

    try:
        evalset = load_set(set_path)
    except EvalSetError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from exc
    settings = _settings()
    chosen: list[str | None]
    if models is not None:
        chosen = list(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
        if not chosen:
            raise typer.BadParameter("name at least one model", param_hint="--models")
        if settings.resolved_provider != "local":
            # The provider lists (and prices) the models of its chain: make it these.
            settings = Settings(models=",".join(m for m in chosen if m))
    elif settings.resolved_provider == "local":
        chosen = [None]  # the offline engine has one "model"
    else:
        chosen = list(settings.model_chain) or [None]

    async def run() -> list[ModelSummary]:
        async with open_process(settings, engine=True) as services:
            evaluator = Evaluator(services.runtime.engine, concurrency=concurrency)
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("Evaluating", total=len(evalset.cases) * len(chosen))
                return await evaluator.run(
                    evalset, chosen, on_result=lambda _model, _result: progress.advance(task)
                )

    try:
        summaries = asyncio.run(run())
    except AppError as exc:
        err.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    if as_json:
        report = report_dict(evalset, summaries, provider=settings.resolved_provider)
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        Console().print(table(evalset, summaries))
    if any(s.answered == 0 for s in summaries):
        err.print("[red]A model described none of the images; see the errors above.[/red]")
        raise typer.Exit(1)


@app.command("audit")
def audit_command(
    inputs: Annotated[
        list[str], typer.Argument(help="HTML and Markdown files, folders or http(s) URLs.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Findings as JSON.")] = False,
    sarif: Annotated[bool, typer.Option("--sarif", help="Findings as SARIF 2.1.0.")] = False,
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 on a finding at this level: error, warning or never.")
    ] = "error",
    max_length: Annotated[int, typer.Option(min=20, max=1000, help="Longer alt: a warning.")] = 150,
) -> None:
    """Report images with missing, suspicious or uninformative alt text (docs/sitetools.md)."""
    import httpx

    from alttext.describe.fetch import FetchLimits, fetch_image
    from alttext.sitetools.documents import collect
    from alttext.sitetools.findings import fails
    from alttext.sitetools.report import AuditReport, run_audit
    from alttext.sitetools.sarif import to_sarif

    if as_json and sarif:
        raise typer.BadParameter("choose one of --json and --sarif")
    if fail_on not in ("error", "warning", "never"):
        raise typer.BadParameter("must be error, warning or never", param_hint="--fail-on")
    files, urls = collect(inputs)

    async def run() -> AuditReport:
        if not urls:
            return await run_audit(files, [], max_length=max_length)
        limits = FetchLimits(allow_private=_settings().allow_private_urls)
        async with httpx.AsyncClient(timeout=30) as client:
            return await run_audit(
                files, urls, lambda u: fetch_image(u, client, limits), max_length=max_length
            )

    report = asyncio.run(run())
    for problem in report.errors:
        err.print(problem, markup=False, highlight=False)
    if sarif:
        sys.stdout.write(json.dumps(to_sarif(report.findings), ensure_ascii=False, indent=2) + "\n")
    elif as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(report.text())
    if report.errors:
        raise typer.Exit(2)
    if fails(report.findings, fail_on):
        raise typer.Exit(1)


@app.command("fix")
def fix_command(
    inputs: Annotated[list[str], typer.Argument(help="HTML and Markdown files or folders.")],
    write: Annotated[bool, typer.Option("--write", help="Rewrite the files.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Also replace alt text the audit finds suspicious.")
    ] = False,
    fetch_remote: Annotated[
        bool, typer.Option("--fetch-remote", help="Fetch http(s) images (SSRF-safe).")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Site URL for site-absolute image paths.")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Folder that site-absolute image paths start in.")
    ] = None,
    language: Annotated[str, typer.Option(help="Language when a document names none.")] = "en",
    max_length: Annotated[int, typer.Option(min=20, max=1000)] = 125,
    api_url: Annotated[
        str | None, typer.Option(envvar="ALTTEXT_API_URL", help="Use a running service.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="ALTTEXT_API_KEY")] = None,
) -> None:
    """Write alt text for images without it, from the document's context; a diff unless
    --write (only alt values change, every other byte stays)."""
    from alttext.sitetools.documents import collect
    from alttext.sitetools.fixing import FixOptions, Summary, fix_document, load_all
    from alttext.sitetools.fixing import write as write_file
    from alttext.sitetools.generate import GenerationFailed, open_generator

    files, urls = collect(inputs)
    if urls:
        raise typer.BadParameter("fix works on local files; audit takes URLs")
    options = FixOptions(
        write=write,
        overwrite=overwrite,
        fetch_remote=fetch_remote,
        base_url=base_url,
        root=root,
        language=language,
        max_length=max_length,
    )
    summary = Summary()
    documents = load_all(files, summary)
    settings = _settings()

    async def run() -> None:
        async with open_generator(settings, api_url, api_key) as generator:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("Fixing", total=sum(len(d.images) for d in documents))
                for document in documents:
                    result = await fix_document(
                        document, generator, options, summary, lambda: progress.advance(task)
                    )
                    if not result.changed:
                        continue
                    if write:
                        try:
                            write_file(result)
                        except OSError as exc:
                            summary.errors.append(f"{result.path}: {exc.strerror or exc}")
                    else:
                        sys.stdout.write(result.diff())

    try:
        asyncio.run(run())
    except (AppError, GenerationFailed) as exc:
        err.print(f"[red]{getattr(exc, 'detail', None) or exc}[/red]")
        raise typer.Exit(1) from exc
    for s in summary.skipped:
        err.print(f"{s.file}:{s.line}:{s.column}: skipped: {s.reason}", markup=False)
    for problem in summary.errors:
        err.print(problem, markup=False, highlight=False)
    counts = summary.as_dict()
    err.print(
        f"{counts['files']} files, {counts['images']} images: {counts['fixed']} fixed, "
        f"{counts['skipped']} skipped, {counts['credits']} credits spent"
        + ("" if write else " (dry run: add --write to change the files)"),
        markup=False,
    )
    if summary.errors:
        raise typer.Exit(2)


@accounts_app.command("create")
def accounts_create(
    email: str,
    credits: Annotated[int | None, typer.Option(help="Starting credits (exactly N).")] = None,
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create an account."""
    from alttext.accounts.service import create_account
    from alttext.billing.ledger import grant_starting_credits

    settings = _settings()
    grant = settings.free_credits if credits is None else credits

    async def run(session: AsyncSession) -> Account:
        account = await create_account(session, email, name=name)
        await grant_starting_credits(session, account, grant)
        return account

    account = _in_transaction(run)
    typer.echo(f"{account.id}\t{account.email}\t{account.credits_balance} credits")


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

    typer.echo(json.dumps(_in_transaction(run), ensure_ascii=False, indent=2))


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

    async def run(services: Services) -> dict[str, int]:
        async with services.sessions() as session:
            account = await require_account_by_email(session, email)
        summary = await erase_account(
            services.sessions, services.settings, account.id, confirm=account.email, actor="admin"
        )
        return summary.kept

    kept = _with_process(run)
    typer.echo(json.dumps({"erased": True, "kept": kept}))


@keys_app.command("create")
def keys_create(email: str, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Create an API key; the secret is printed alone on the last line, once."""
    from alttext.accounts.service import create_key, require_account_by_email

    async def run(session: AsyncSession) -> tuple[str, str]:
        account = await require_account_by_email(session, email)
        api_key, secret = await create_key(session, account.id, name=name)
        return api_key.id, secret

    key_id, secret = _in_transaction(run)
    typer.echo(f"Created {key_id}. Store the secret now; it is not shown again:")
    typer.echo(secret)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key at once."""
    from alttext.accounts.service import revoke_key

    api_key = _in_transaction(lambda s: revoke_key(s, key_id))
    typer.echo(f"Revoked {api_key.id} ({api_key.prefix}…)")


@credits_app.command("grant")
def credits_grant(
    email: str,
    credits: Annotated[int, typer.Argument(help="Credits to add (1 to 10,000,000).")],
    reason: Annotated[str, typer.Option(help="Why: kept in the ledger.")],
) -> None:
    """Grant credits to an account (an admin ledger entry)."""
    from alttext.billing.ledger import grant

    async def run(session: AsyncSession) -> tuple[str, int]:
        from alttext.accounts.service import require_account_by_email
        from alttext.billing.credits import balance

        account = await require_account_by_email(session, email)
        entry = await grant(session, account.id, credits, reason=reason)
        return entry.id, await balance(session, account.id)

    entry_id, new_balance = _in_transaction(run)
    typer.echo(f"Granted {credits} credits ({entry_id}); balance is now {new_balance}.")


@app.command()
def usage(
    email: str,
    days: Annotated[int, typer.Option(min=1, max=731, help="How many days back.")] = 30,
    granularity: Annotated[str, typer.Option(help="day or month")] = "day",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Usage of an account by period and model."""
    from datetime import UTC, datetime, timedelta

    from rich.table import Table

    from alttext.accounts.service import require_account_by_email
    from alttext.usage.service import UsageRow, aggregate

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

    rows = _in_transaction(run)
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
def db_upgrade() -> None:
    """Apply database migrations."""
    from alttext.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("Database is up to date.")


@app.command()
def purge(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Apply the retention policy now (the API also runs it daily)."""
    from alttext.privacy.retention import PurgeReport
    from alttext.privacy.retention import purge as run_purge

    async def run(services: Services) -> PurgeReport:
        return await run_purge(services.sessions, services.settings)

    report = _with_process(run)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    for name, removed in report.as_dict().items():
        typer.echo(f"{name.replace('_', ' ')}: {removed}")


@app.command("dev-key", hidden=True)
def dev_key_command() -> None:
    """Development only: ensure the dev account and print its API key (make run)."""
    from alttext.dev_account import DEV_EMAIL, ensure_dev_account

    settings = _settings()
    if settings.env == "production":
        err.print("[red]dev-key is refused in production.[/red]")
        raise typer.Exit(2)
    secret = _in_transaction(lambda s: ensure_dev_account(s, settings.secret_key))
    url = f"http://{settings.host}:{settings.port}"
    err.print(f"\n[bold]Development account[/bold] {DEV_EMAIL} — API key:")
    typer.echo(secret)
    err.print(
        f"Try it:\n  curl -s {url}/v1/alt-text -H 'Authorization: Bearer {secret}' "
        "-F image=@photo.jpg\n",
        soft_wrap=True,
        highlight=False,
    )


def main() -> None:
    app()
