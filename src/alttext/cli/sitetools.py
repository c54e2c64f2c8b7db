"""``alttext audit`` and ``alttext fix``: alt text in HTML and Markdown (docs/sitetools.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alttext.cli.common import err, settings

if TYPE_CHECKING:
    from alttext.sitetools.report import AuditReport

PAGE_ACCEPT = "text/html,application/xhtml+xml,text/markdown;q=0.9,text/plain;q=0.8,*/*;q=0.5"


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
    app.command("fix")(fix_command)


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
    from alttext.sitetools.documents import collect
    from alttext.sitetools.findings import fails
    from alttext.sitetools.report import audit_files
    from alttext.sitetools.sarif import to_sarif

    if as_json and sarif:
        raise typer.BadParameter("choose one of --json and --sarif")
    if fail_on not in ("error", "warning", "never"):
        raise typer.BadParameter("must be error, warning or never", param_hint="--fail-on")
    files, urls = collect(inputs)
    # Local files need no event loop or HTTP client: a pre-commit hook starts quickly.
    report = _audit_with_pages(files, urls, max_length) if urls else audit_files(files, max_length)
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


def _audit_with_pages(files: list[Path], urls: list[str], max_length: int) -> AuditReport:
    import asyncio

    import httpx

    from alttext.describe.errors import ImageFetchFailed
    from alttext.describe.fetch import FetchLimits, fetch_url
    from alttext.sitetools.report import run_audit

    async def run() -> AuditReport:
        limits = FetchLimits(allow_private=settings().allow_private_urls)
        async with httpx.AsyncClient(timeout=30) as client:

            async def fetch_page(url: str) -> bytes:
                # The SSRF-safe fetcher, its messages naming a page (not an image).
                page = await fetch_url(url, client, limits, noun="page", accept=PAGE_ACCEPT)
                if not 200 <= page.status < 300:
                    raise ImageFetchFailed(f"The page URL returned HTTP {page.status}.")
                return page.body

            return await run_audit(files, urls, fetch_page, max_length=max_length)

    return asyncio.run(run())


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
    import asyncio

    from rich.progress import Progress

    from alttext.describe.errors import AppError
    from alttext.sitetools.documents import collect
    from alttext.sitetools.fixing import FixOptions, Summary, fix_document, load_all, targets
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
    current = settings()

    async def run() -> None:
        async with open_generator(current, api_url, api_key) as generator:
            with Progress(console=err.console, transient=True) as progress:
                # fix_document reports each image it works on: the ones without alt (and, with
                # --overwrite, the suspicious ones), not every image, so count those.
                total = sum(len(targets(d, overwrite)) for d in documents)
                task = progress.add_task("Fixing", total=total)
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
