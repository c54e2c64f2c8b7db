"""``alttext mcp``: the tools of :mod:`.tools` on the official SDK's ``MCPServer``, over stdio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from alttext import __version__
from alttext.mcp import tools
from alttext.mcp.tools import Workspace

if TYPE_CHECKING:
    from alttext.config import Settings

INSTRUCTIONS = (
    "Write and check alt text for images in the user's project. describe_image writes alt text "
    "for one image; audit reports images in HTML or Markdown with missing or poor alt text; fix "
    "writes the missing alt text (a dry run with a diff unless write is true). Paths are "
    "relative to the project folder; files outside it are refused."
)
Paths = Annotated[
    list[str], Field(description="HTML or Markdown files or folders, relative to the project.")
]
MaxLength = Annotated[int, Field(ge=20, le=1000, description="Longest alt text, in characters.")]


def build_server(
    settings: Settings, root: Path, api_url: str | None = None, api_key: str | None = None
) -> MCPServer[Workspace]:
    workspace = Workspace(root=root.resolve(), settings=settings, api_url=api_url, api_key=api_key)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Workspace]) -> AsyncIterator[Workspace]:
        async with workspace:
            yield workspace

    server: MCPServer[Workspace] = MCPServer(
        "alttext", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan
    )

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=True))
    async def describe_image(
        path: Annotated[
            str | None, Field(description="An image file, relative to the project.")
        ] = None,
        url: Annotated[str | None, Field(description="An http(s) image URL.")] = None,
        image_base64: Annotated[
            str | None, Field(description="The image as base64 or a data: URI.")
        ] = None,
        context: Annotated[
            str | None,
            Field(max_length=2000, description="Surrounding text, caption or page title."),
        ] = None,
        role: Annotated[
            str,
            Field(description="auto, informative, decorative, functional, text or complex."),
        ] = "auto",
        language: Annotated[str, Field(description="BCP 47 language tag.")] = "en",
        max_length: MaxLength = 125,
    ) -> dict[str, Any]:
        """Write alt text for one image: give exactly one of path, url and image_base64.
        An empty alt_text means the image is decorative (use alt="")."""
        return await tools.describe_image(
            workspace,
            path=path,
            url=url,
            image_base64=image_base64,
            context=context,
            role=role,
            language=language,
            max_length=max_length,
        )

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def audit(
        paths: Paths,
        max_length: Annotated[
            int, Field(ge=20, le=1000, description="Longer alt text is a warning.")
        ] = 150,
    ) -> dict[str, Any]:
        """Find images with missing, empty-in-a-link or suspicious alt text in HTML and
        Markdown files: each finding has file, line, column, rule, severity and message."""
        return await tools.audit(workspace, paths, max_length)

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True))
    async def fix(
        paths: Paths,
        write: Annotated[
            bool, Field(description="Change the files; false (default) returns a diff only.")
        ] = False,
        overwrite: Annotated[
            bool, Field(description="Also replace alt text the audit finds suspicious.")
        ] = False,
        fetch_remote: Annotated[
            bool, Field(description="Fetch http(s) images (SSRF-safe); else skipped.")
        ] = False,
        language: Annotated[str, Field(description="Language when a document names none.")] = "en",
        max_length: MaxLength = 125,
    ) -> dict[str, Any]:
        """Write alt text for images without it, from each document's context. A dry run
        (a unified diff, no file changed) unless write is true; only alt values change."""
        return await tools.fix(
            workspace,
            paths,
            write=write,
            overwrite=overwrite,
            fetch_remote=fetch_remote,
            language=language,
            max_length=max_length,
        )

    return server


def run(
    settings: Settings, *, root: Path, api_url: str | None = None, api_key: str | None = None
) -> None:
    """Serve on stdin and stdout until the client closes them."""
    build_server(settings, root, api_url, api_key).run("stdio")
