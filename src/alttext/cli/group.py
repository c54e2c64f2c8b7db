"""The class of every ``alttext`` command group: Typer's, with flags that stay bools and the
garbage collector's policy for the command chosen.

A command line process starts with Python's cyclic garbage collector off (``alttext.cli.main``).
Importing SQLAlchemy, Pydantic and our tables makes a few hundred thousand objects that live as
long as the process, and the collector walks them again and again while they are made, finding
nothing to free: a tenth of a short database command's time here (docs/cli.md, start-up).
Reference counting frees everything else as before. A command marked :func:`quick` (one query
or one small transaction) runs that way to the end; any other command (serve, worker, describe,
fix, export, erase, purge, ...) turns the collector back on as soon as it is chosen, before its
arguments are parsed, so a long or unbounded run is collected as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from typer.core import TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer._click.core import Command, Context, Parameter  # what Typer's methods take

F = TypeVar("F", bound=Callable[..., Any])
_QUICK = "_alttext_quick"


def quick(command: F) -> F:
    """Mark a short, bounded command: it runs with the cyclic collector off (module doc).
    Typer copies the function's attributes onto the callback it builds, which is where
    :meth:`Group.resolve_command` looks."""
    setattr(command, _QUICK, True)
    return command


class Group(TyperGroup):
    """Typer coerces a parameter's value through a Pydantic ``TypeAdapter`` unless it is a
    flag whose value already is a bool, and the flags it adds to a group (``--help``, the
    completion ones) have no default (None): ``alttext keys --help`` would import Pydantic
    (about 150 ms here) only to coerce the root's absent flags. A default of False skips that
    and means the same to their callbacks (tests/cli/test_startup.py checks the imports)."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if (
                isinstance(param, TyperOption)
                and param.is_bool_flag
                and param.default is None
                and param.type_descriptor.annotation is bool
            ):
                param.default = False
        return params

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if (
            command is not None
            and not isinstance(command, TyperGroup)
            and not getattr(command.callback, _QUICK, False)
        ):
            gc.enable()
        return name, command, rest
