"""The versions of the terms and the privacy policy in force; a sign-up records which it accepted.

Change a version whenever the text changes materially, so every consent names what was agreed.
"""

from __future__ import annotations

TERMS_VERSION = "2026-11-24"
PRIVACY_VERSION = "2026-11-24"
