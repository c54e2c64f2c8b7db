"""The ``alttext`` command line: one module per command group, assembled here.

Every command imports what it needs inside its body, so ``alttext --help`` loads only Typer and
Rich (docs/cli.md lists the commands).
"""

from __future__ import annotations

import gc

import typer

from alttext.cli import admin, describe, evaluate, serving, sitetools
from alttext.cli.group import Group

# Plain help (Click's formatter) and plain tracebacks: Typer's Rich help and pretty exceptions
# load rich.markdown and Pygments, about 200 ms of every `--help` (docs/cli.md, startup);
# Group keeps Pydantic out of `alttext GROUP --help`.
app = typer.Typer(
    help="AltText API: alt text for images.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    cls=Group,
)
serving.register(app)
describe.register(app)
evaluate.register(app)
sitetools.register(app)
admin.register(app)


def main() -> None:
    gc.disable()  # until a command that is not quick() is chosen (cli/group.py)
    try:
        app()
    finally:
        # Shutting the interpreter down runs the cyclic collector over every object the imports
        # made (SQLAlchemy's and Pydantic's classes, our tables): about 150 ms of a 0.5 s
        # database command here, to free memory the process is handing back anyway. Frozen
        # objects are skipped; atexit handlers, flushes and closes still run as before.
        gc.freeze()
