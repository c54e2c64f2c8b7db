"""``alttext eval``: compare models on an evaluation set (docs/evaluation.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alttext.cli.common import err
from alttext.cli.common import settings as current_settings

if TYPE_CHECKING:
    from alttext.evaluation.metrics import ModelSummary


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


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
    import asyncio

    from rich.progress import Progress

    from alttext.config import Settings
    from alttext.describe.errors import AppError
    from alttext.evaluation.cases import EvalSetError, load_set
    from alttext.evaluation.report import report_dict, table
    from alttext.evaluation.running import Evaluator
    from alttext.process import open_process

    try:
        evalset = load_set(set_path)
    except EvalSetError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from exc
    settings = current_settings()
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
            with Progress(console=err.console, transient=True) as progress:
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
        from rich.console import Console

        Console().print(table(evalset, summaries))
    if any(s.answered == 0 for s in summaries):
        err.print("[red]A model described none of the images; see the errors above.[/red]")
        raise typer.Exit(1)
