"""``alttext describe``: alt text for local files, folders or URLs on the local engine.

Folders are searched for images; every other file is listed as skipped, with why. Results go to
stdout as they come (text or one JSON object a line); a progress bar (two or more images) and a
summary go to stderr. Exit 0 when every image was described, 1 when one failed or there was
nothing to describe, 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alttext.cli.common import err, with_process

if TYPE_CHECKING:
    from alttext.process import Services

# The engine's roles (alttext.describe.types.ROLES, which --help must not import).
ROLES = ("auto", "informative", "decorative", "functional", "text", "complex")
IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif",
}  # fmt: skip


@dataclass
class Plan:
    """What a describe run will do: its targets, the files it skips and why, empty folders."""

    targets: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def plan(items: list[str]) -> Plan:
    out = Plan()
    for item in items:
        if item.startswith(("http://", "https://")):
            out.targets.append(item)
            continue
        path = Path(item)
        if not path.is_dir():
            out.targets.append(item)  # a named file is tried: the engine says if it is no image
            continue
        found = False
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).parts
            if not p.is_file() or any(part.startswith(".") for part in rel):
                continue  # hidden files and folders (.git, .DS_Store) are not listed
            found = True
            suffix = p.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                out.targets.append(str(p))
            else:
                out.skipped.append((str(p), f"not an image ({suffix or 'no extension'})"))
        if not found:
            out.empty.append(item)
    return out


@dataclass
class Tally:
    described: int = 0
    decorative: int = 0
    failed: int = 0

    def line(self, skipped: int, seconds: float) -> str:
        return (
            f"{self.described} described ({self.decorative} decorative), {self.failed} failed, "
            f"{skipped} skipped in {seconds:.1f} s"
        )


def register(app: typer.Typer) -> None:
    app.command()(describe)


def describe(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or http(s) URLs.")],
    context: Annotated[str | None, typer.Option(help="Surrounding text or caption.")] = None,
    language: Annotated[str, typer.Option(help="BCP 47 tag(s), comma-separated.")] = "en",
    role: Annotated[str, typer.Option(help=f"{', '.join(ROLES)}.")] = "auto",
    max_length: Annotated[int, typer.Option(min=20, max=1000)] = 125,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    api_url: Annotated[
        str | None,
        typer.Option(envvar="ALTTEXT_API_URL", help="Use a running service, not the local engine."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="ALTTEXT_API_KEY", help="API key for --api-url.")
    ] = None,
) -> None:
    """Alt text for local files or URLs: on the local engine (same engine, same rules), or on a
    running service with --api-url/--api-key.

    Folders are searched for images; other files are listed as skipped. Exit 0 when every
    image was described, 1 when one failed or there was nothing to describe."""
    started = time.monotonic()
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    if api_url and not api_key:
        raise typer.BadParameter("--api-url needs --api-key (or ALTTEXT_API_KEY)")
    import asyncio
    from collections.abc import Awaitable, Callable

    from rich.progress import Progress

    from alttext.cli.common import run_app_errors, settings
    from alttext.describe.errors import AppError
    from alttext.describe.fetch import fetch_image
    from alttext.generation.schemas import AltTextOptions
    from alttext.generation.service import describe_options
    from alttext.sitetools.generate import AltRequest, GenerationFailed, open_generator

    langs = [x.strip() for x in language.split(",") if x.strip()]
    try:
        checked = AltTextOptions(context=context, role=role, language=langs, max_length=max_length)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = describe_options(checked)
    work = plan(inputs)
    for name, why in work.skipped:
        err.print(f"skipped {name}: {why}", markup=False, highlight=False, soft_wrap=True)
    for folder in work.empty:
        err.print(f"{folder}: the folder is empty", markup=False, highlight=False, soft_wrap=True)
    if not work.targets:
        err.print(
            f"Nothing to describe: no images ({len(work.skipped)} other files skipped).",
            markup=False,
        )
        raise typer.Exit(1)
    tally = Tally()
    many = len(work.targets) > 1
    where = f"the service at {api_url}" if api_url else "the local engine"
    if many:
        err.print(f"Describing {len(work.targets)} images on {where}…", markup=False)

    async def each(
        fetch: Callable[[str], Awaitable[bytes]],
        describe_one: Callable[[bytes], Awaitable[dict[str, Any]]],
    ) -> None:
        with Progress(console=err.console, transient=True, disable=not many) as progress:
            task = progress.add_task("Describing", total=len(work.targets))
            for target in work.targets:
                result: dict[str, Any] = {"input": target}
                try:
                    if target.startswith(("http://", "https://")):
                        data = await fetch(target)
                    else:
                        data = await asyncio.to_thread(Path(target).read_bytes)
                    result.update(await describe_one(data))
                    tally.described += 1
                    tally.decorative += bool(result["decorative"])
                except (AppError, GenerationFailed, OSError) as exc:
                    tally.failed += 1
                    detail = exc.strerror if isinstance(exc, OSError) else None
                    detail = detail or getattr(exc, "detail", None) or str(exc)
                    result["error"] = {"code": getattr(exc, "code", "io_error"), "detail": detail}
                print_result(result, as_json)
                progress.advance(task)

    async def local(services: Services) -> None:
        rt = services.runtime

        async def describe_one(data: bytes) -> dict[str, Any]:
            d = await rt.engine.describe(data, options)
            return {
                "alt_text": d.alt_text,
                "alt_texts": d.alt_texts,
                "role": d.role,
                "decorative": d.decorative,
                "needs_review": d.needs_review,
                "review_reasons": d.review_reasons,
                "model": d.model,
            }

        await each(lambda url: fetch_image(url, rt.http, rt.fetch_limits), describe_one)

    async def remote() -> None:
        # The service checks the options again; the generator is the one fix and MCP use.
        request = AltRequest(
            context=context,
            role=role,
            link_target=None,
            language=",".join(langs),
            max_length=max_length,
        )
        async with open_generator(settings(), api_url, api_key) as generator:

            async def describe_one(data: bytes) -> dict[str, Any]:
                g = await generator.describe(data, request)
                return {
                    "alt_text": g.alt_text,
                    "alt_texts": g.alt_texts,
                    "role": g.role,
                    "decorative": g.decorative,
                    "needs_review": g.needs_review,
                    "review_reasons": list(g.review_reasons),
                    "model": g.model,
                    "credits": g.credits,
                }

            await each(generator.fetch, describe_one)

    if api_url:
        run_app_errors(remote())
    else:
        with_process(local, engine=True)
    err.print(
        tally.line(len(work.skipped), time.monotonic() - started), markup=False, soft_wrap=True
    )
    if tally.failed:
        raise typer.Exit(1)


def print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    elif "error" in result:
        err.print(f"[red]{result['input']}: {result['error']['detail']}[/red]")
    elif result["decorative"] or not result["alt_text"]:
        sys.stdout.write(f'{result["input"]}\talt=""  (decorative)\n')
    else:
        flag = "  (needs review)" if result["needs_review"] else ""
        sys.stdout.write(f"{result['input']}\t{result['alt_text']}{flag}\n")
    sys.stdout.flush()
