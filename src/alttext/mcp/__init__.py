"""The MCP surface: ``alttext mcp`` serves describe_image, audit and fix over stdio (docs/mcp.md).

:mod:`.tools` holds the tools (confined to one folder); :mod:`.server` registers them with the
official SDK's ``MCPServer``.
"""
