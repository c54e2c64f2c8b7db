"""The class of every ``alttext`` command group: Typer's, with flags that stay bools."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer._click.core import Context, Parameter  # the types Typer's Command methods take


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
