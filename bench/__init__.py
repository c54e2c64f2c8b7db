"""`make bench`: the benchmarks behind docs/benchmarks.md (run bench/run.py)."""
