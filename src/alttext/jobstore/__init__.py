"""The records of bulk jobs and outbound webhooks (a domain: tables and their states only).

Kept below privacy so that the export, erasure, inventory and retention purge can name these
tables; the use case that runs jobs (``alttext.jobs``) sits above and writes them.
"""
