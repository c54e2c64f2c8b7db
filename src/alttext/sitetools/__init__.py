"""Audit and fix alt text in HTML and Markdown files with byte-preserving edits.

:mod:`.documents` reads files and finds images with exact offsets (:mod:`.html_scan`,
:mod:`.markdown_scan`); :mod:`.findings` judges them (reusing the engine's rules); :mod:`.sarif`
and :mod:`.report` print results; :mod:`.edits` rewrites only alt values; :mod:`.generate` makes
alt text on the local engine or a running service; :mod:`.fixing` ties fix together.
"""
