"""Use case: compare models on an evaluation set of images (``alttext eval``).

* :mod:`.cases` loads and validates a set (cases.json, images, licences); the project's own
  set ships in ``data/`` with the package;
* :mod:`.running` sends every case through the process's engine, one model at a time;
* :mod:`.results` is one model's outcome on one case; :mod:`.metrics` turns results into the
  numbers of docs/alt-text-guide.md's "How quality is judged" (pure functions);
* :mod:`.report` prints them as a table or JSON.

docs/evaluation.md explains how an operator runs it and brings a set of their own.
"""

from __future__ import annotations
