"""Markdown tables and target checks from the service benchmark's numbers (plain dicts, as in
docs/benchmarks.json), so the same numbers feed the JSON and the document."""

from __future__ import annotations

from typing import Any

P99_OVER_P50_MAX = 3.0
CPU_OVER_THUMBNAIL_MAX = 1.5
UPLOAD_RSS_MAX_BYTES = 1_500_000_000  # "< 1.5 GB"
CLI_STARTUP_MAX_MS = 500.0  # help and the commands that need no model (issue 12)
MIB = 1024 * 1024


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in errors.items()) if errors else "none"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def yes_no(met: bool | None) -> str:
    return {True: "**yes**", False: "**NO**", None: "n/a"}[met]


def find_cell(
    cells: list[dict[str, Any]], delay: float, processes: int, concurrency: int, body: str
) -> dict[str, Any] | None:
    for cell in cells:
        if (
            cell["model_delay_s"] == delay
            and cell["processes"] == processes
            and cell["concurrency"] == concurrency
            and cell["body"] == body
        ):
            return cell
    return None


def load_table(cells: list[dict[str, Any]]) -> str:
    head = (
        "| model | API processes | body | concurrency | ok | ok req/s | p50 ms | p99 ms "
        "| p99÷p50 | errors by status | server CPU ms/req | thumbnail ms | ÷ thumbnail "
        "| server CPU % | peak RSS MiB | load gen CPU % |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = []
    for c in cells:
        model = "instant" if c["model_delay_s"] == 0 else f"{c['model_delay_s'] * 1000:.0f} ms"
        rows.append(
            f"| {model} | {c['processes']} | {c['body']} | {c['concurrency']} | {fmt(c['ok'])} "
            f"| {fmt(c['ok_per_s'], 1)} | {fmt(c['p50_ms'])} | {fmt(c['p99_ms'])} "
            f"| {fmt(ratio(c['p99_ms'], c['p50_ms']), 2)} | {errors_text(c['errors'])} "
            f"| {fmt(c['server_cpu_ms_per_ok'], 1)} | {fmt(c.get('reference_cpu_ms'), 1)} "
            f"| {fmt(c['cpu_over_thumbnail'], 2)} "
            f"| {fmt(c['server_cpu_percent'])} | {fmt(c['peak_rss_mib'])} "
            f"| {fmt(c['load_generator_cpu_percent'])} |"
        )
    return "\n".join([head, *rows])


def one_shot_table(label: str, r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| scenario | clients | answered 200 | errors by status | p50 ms | p99 ms "
            "| server CPU ms/req | server RSS before MiB | peak server RSS MiB | wall s |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| {label} | {fmt(r['issued'])} | {fmt(r['ok'])} | {errors_text(r['errors'])} "
            f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(r.get('server_cpu_ms_per_ok'), 1)} "
            f"| {fmt(_first(r.get('start_rss_mib_by_process')))} | {fmt(r['peak_rss_mib'])} "
            f"| {fmt(r['wall_s'], 1)} |",
        ]
    )


def _first(values: list[Any] | None) -> Any:
    return values[0] if values else None


def cache_table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| request | rounds | median ms | `cached: true` in the answer |",
            "|---|---:|---:|---|",
            f"| first (miss) | {r['rounds']} | {fmt(r['first_median_ms'])} "
            f"| {r['first_cached_true']} of {r['rounds']} |",
            f"| identical repeat | {r['rounds']} | {fmt(r['repeat_median_ms'])} "
            f"| {r['repeat_cached_true']} of {r['rounds']} |",
        ]
    )


def cli_target(cli: dict[str, Any]) -> dict[str, Any]:
    """The CLI startup target from bench/bench_cli.py's numbers: met only when every measured
    command's median is under ``CLI_STARTUP_MAX_MS``; the slowest is named."""
    commands = cli.get("commands", [])
    medians = [c["median_ms"] for c in commands if c.get("median_ms") is not None]
    measured = "no command measured"
    if commands:
        slowest = max(commands, key=lambda c: c.get("median_ms") or 0.0)
        over = [c for c in commands if (c.get("median_ms") or 0.0) >= CLI_STARTUP_MAX_MS]
        measured = (
            f"{len(commands) - len(over)} of {len(commands)} commands under "
            f"{CLI_STARTUP_MAX_MS:.0f} ms; slowest `{slowest['command']}`: median "
            f"{fmt(slowest.get('median_ms'))} ms over {slowest.get('runs', 0)} runs"
        )
        if "bare_python_ms" in cli:
            measured += f" (bare `python -c pass`: {cli['bare_python_ms']:.0f} ms)"
    return {
        "scenario": "CLI startup",
        "target": f"help and commands that need no model: median < {CLI_STARTUP_MAX_MS:.0f} ms",
        "measured": measured,
        "met": (
            None
            if not commands or len(medians) < len(commands)
            else all(m < CLI_STARTUP_MAX_MS for m in medians)
        ),
    }


def targets(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it is met."""
    out: list[dict[str, Any]] = []
    cells = service.get("load", [])
    for processes in (1, 2):
        cell = find_cell(cells, 0.0, processes, 16, "multipart")
        if cell is None:
            continue
        r = ratio(cell["p99_ms"], cell["p50_ms"])
        out.append(
            {
                "scenario": f"instant model, concurrency 16, {processes} API process(es)",
                "target": "p99 ≤ 3 × p50",
                "measured": f"p99 {fmt(cell['p99_ms'])} ms, p50 {fmt(cell['p50_ms'])} ms: "
                f"{fmt(r, 2)}×",
                "met": None if r is None else r <= P99_OVER_P50_MAX,
            }
        )
    reference = service.get("reference", {})
    for processes in (1, 2):
        cell = find_cell(cells, 0.0, processes, 16, "multipart")
        if cell is None:
            continue
        r = cell["cpu_over_thumbnail"]
        out.append(
            {
                "scenario": f"instant model, concurrency 16, {processes} API process(es)",
                "target": f"server CPU per request ≤ 1.5 × thumbnail ({reference.get('label')})",
                "measured": f"{fmt(cell['server_cpu_ms_per_ok'], 1)} ms ÷ "
                f"{fmt(cell.get('reference_cpu_ms', reference.get('cpu_ms')), 1)} ms "
                f"(timed around the cell) = {fmt(r, 2)}×",
                "met": None if r is None else r <= CPU_OVER_THUMBNAIL_MAX,
            }
        )
    uploads = service.get("uploads")
    if uploads:
        answered = sum(v for k, v in uploads["statuses"].items() if k in ("200", "503"))
        out.append(
            {
                "scenario": f"{uploads['issued']} concurrent {uploads['upload_mb']:.1f} MB uploads",
                "target": "every client answered 200 or 503",
                "measured": f"{answered:,} of {uploads['issued']:,} "
                f"({errors_text(uploads['statuses'])})",
                "met": answered == uploads["issued"],
            }
        )
        peak = uploads["peak_rss_mib"]
        out.append(
            {
                "scenario": f"{uploads['issued']} concurrent {uploads['upload_mb']:.1f} MB uploads",
                "target": "peak server RSS < 1.5 GB",
                "measured": f"{fmt(peak)} MiB ({peak * MIB / 1e9:.2f} GB)",
                "met": peak * MIB < UPLOAD_RSS_MAX_BYTES,
            }
        )
    flood = service.get("flood")
    if flood:
        out.append(
            {
                "scenario": f"{flood['issued']:,} concurrent requests, 800 ms model, 1 process",
                "target": "held: every request answered 200 (no numeric target; our reading)",
                "measured": f"{flood['ok']:,} ok ({errors_text(flood['errors'])}), "
                f"p50 {fmt(flood['p50_ms'])} ms, p99 {fmt(flood['p99_ms'])} ms, "
                f"peak RSS {fmt(flood['peak_rss_mib'])} MiB",
                "met": flood["ok"] == flood["issued"],
            }
        )
    cache = service.get("cache")
    if cache:
        out.append(
            {
                "scenario": "identical repeated request (800 ms model)",
                "target": "answered from the result cache (`cached: true`)",
                "measured": f"repeat {fmt(cache['repeat_median_ms'])} ms vs first "
                f"{fmt(cache['first_median_ms'])} ms; cached: true in "
                f"{cache['repeat_cached_true']} of {cache['rounds']}",
                "met": cache["repeat_cached_true"] == cache["rounds"],
            }
        )
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| scenario | target | measured | met |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['target']} | {r['measured']} | {yes_no(r['met'])} |")
    return "\n".join(lines)


def service_markdown(service: dict[str, Any]) -> str:
    ref = service["reference"]
    img = service["image"]
    idle = " / ".join(fmt(v, 1) for v in service.get("idle_server_cpu_percent", [])) or "–"
    parts = [
        f"`alttext serve` (uvicorn) as real subprocesses on one SQLite database, the fake "
        f"OpenRouter (tests/fakes/openrouter.py) in its own process as the model, "
        f"httpx.AsyncClient as the load generator in the bench process. "
        f"Two API processes are two `alttext serve` on two ports, requests alternating between "
        f"them (the app is built in-process, so `uvicorn --workers` does not apply). "
        f"Upload: a {img['width']}x{img['height']} ({img['megapixels']:.2f} MP) JPEG of "
        f"{img['bytes']:,} bytes; each request has its own `context`, so no answer can come "
        f"from a result cache. Plan: **{service['plan']['name']}**.",
        "",
        f"Reference for CPU per request: {ref['label']} of the same JPEG to "
        f"{ref['long_side']} px: {fmt(ref['cpu_ms'], 1)} ms CPU (median of {ref['runs']}; "
        f"with a JPEG re-encode: {fmt(ref['with_encode_cpu_ms'], 1)} ms). Each cell's ratio "
        f"(÷ thumbnail) uses the same reference timed again just before and after that cell "
        f"(the mean of the two, in the table), since the machine's speed drifts over a run.",
        "",
        "Server CPU is user + system time of the `alttext serve` processes from /proc, per "
        "200 answer, including what they do between requests (idle after warm-up: "
        f"{idle} % of one core per process); server CPU % is of one core over the cell's "
        "wall time; peak RSS is of the largest API process; the load generator's CPU is its "
        "whole process (it shares the machine's cores with the servers and the fake model). "
        "Percentiles are of 200 answers; each "
        "cell starts with all its connections at once and stops issuing at its time cap "
        f"(bench/plan.py). Load generator event loop: {service.get('load_generator_loop', '?')}.",
        "",
    ]
    if service.get("load"):
        parts += ["", "### Under load", "", load_table(service["load"])]
    if service.get("flood"):
        parts += ["", "### Many requests held by one process", ""]
        parts.append(one_shot_table("all at once, 800 ms model", service["flood"]))
    if service.get("uploads"):
        u = service["uploads"]
        parts += ["", "### Concurrent large uploads (instant model, one process)", ""]
        parts.append(
            f"Each client uploads a {u['image_width']}x{u['image_height']} JPEG of "
            f"{u['upload_bytes']:,} bytes (multipart). {u['peak_from']}.\n"
        )
        parts.append(one_shot_table("all at once", u))
    if service.get("cache"):
        parts += ["", "### Result cache: an identical request again (800 ms model)", ""]
        parts.append(cache_table(service["cache"]))
    errors = {
        f"{c['body']} c={c['concurrency']} p={c['processes']}": c["first_errors"]
        for c in service.get("load", [])
        if c["first_errors"]
    }
    for key in ("flood", "uploads"):
        if service.get(key, {}).get("first_errors"):
            errors[key] = service[key]["first_errors"]
    if errors:
        parts += ["", "First error seen per status (start of the body):", ""]
        for where, by_status in errors.items():
            for status, body in by_status.items():
                text = " ".join(body[:160].replace("`", "'").split())
                parts.append(f"- {where}, {status}: `{text}`")
    return "\n".join(parts)
