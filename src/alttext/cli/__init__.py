"""The ``alttext`` command line: one module per command group, assembled here.

Every command imports what it needs inside its body, so ``alttext --help`` loads only Typer and
Rich (docs/cli.md lists the commands).
"""

from __future__ import annotations

import typer

from alttext.cli import admin, describe, evaluate, serving, sitetools

app = typer.Typer(help="AltText API: alt text for images.", no_args_is_help=True)
serving.register(app)
describe.register(app)
evaluate.register(app)
sitetools.register(app)
admin.register(app)


def main() -> None:
    app()
