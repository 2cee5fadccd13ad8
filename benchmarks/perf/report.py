"""Turn results JSON into goal verdicts, a markdown table and small PNG plots."""

from __future__ import annotations

from pathlib import Path

from ..markdown import replace_block

INGEST_RATIO_GOAL = 0.80
SELECTION_LATENCY_RATIO_GOAL = 1.5
ROUND_P95_GOAL_MS = 1000.0
ROUND_GOAL_TASKS = 100_000
UPSERT_GOAL_PER_S = 3000.0
TABLE_BLOCK = "performance-table"  # the full tables, in performance.md
SUMMARY_BLOCK = "performance-summary"  # one row per measure, in the README


def goals(results: dict) -> dict:
    """Each goal of the issue: met (True/False) or None when its section was not run."""
    verdict: dict = {}
    ingest = results.get("ingest")
    verdict["ingest_ratio_ge_0.8"] = None if not ingest else ingest["ratio"] >= INGEST_RATIO_GOAL
    text = results.get("ingest_text")
    verdict["ingest_text_ratio_ge_0.8"] = None if not text else text["ratio"] >= INGEST_RATIO_GOAL
    rows = results.get("selection") or []
    verdict["selection_recall_1"] = None if not rows else all(r["min_recall_at_k"] == 1.0 for r in rows)
    verdict["selection_p95_le_1.5x_exact"] = None if not rows else all(
        r["p95_ms"] <= SELECTION_LATENCY_RATIO_GOAL * r["exact_scan_p95_ms"] for r in rows)
    rounds = [r for r in results.get("round") or [] if r["tasks"] >= ROUND_GOAL_TASKS]
    verdict["round_p95_le_1s_at_100k"] = None if not rounds else all(r["p95_ms"] <= ROUND_P95_GOAL_MS for r in rounds)
    upsert = results.get("upsert_per_s")
    verdict["upsert_ge_3000_per_s"] = None if upsert is None else upsert >= UPSERT_GOAL_PER_S
    return verdict


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def markdown_table(results: dict) -> str:
    lines = []
    meta = results.get("meta", {})
    machine = meta.get("machine", {})
    start_load = machine.get("load_average_at_start")
    lines.append(f"Measured {meta.get('finished', '?')} on {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), "
                 f"torch threads {machine.get('torch_threads')}"
                 + (f", load average at start {start_load}" if start_load else "")
                 + f"; mode: {'quick' if meta.get('quick') else 'full'}.")
    loads = meta.get("load_average_at_section_start") or {}
    if loads:
        lines.append("Load average (1/5/15 min) as each section started: " + ", ".join(
            f"{name} {'/'.join(f'{x:.1f}' for x in values)}" for name, values in loads.items()) + ".")
    if meta.get("load_average_note"):
        lines.append(meta["load_average_note"])
    for rerun in meta.get("partial_runs") or []:
        start = rerun.get("load_average_at_start")
        lines.append(f"Run alone later, {rerun['finished']}: {', '.join(rerun['sections'])} (`{rerun['command']}`, "
                     f"{rerun['wall_s'] / 60:.1f} min" + (f", load average at start {start}" if start else "") + ").")
    wall = meta.get("wall_s") or {}
    if wall:
        lines.append("Wall time: " + ", ".join(f"{name.replace('_', ' ')} {seconds / 60:.1f} min" for name, seconds in wall.items()) + ".")
    lines.append("")
    ingest = results.get("ingest")
    if ingest:
        lines += ["**Ingest** (ViT-B/32, random weights, batch %d, %s, %d fetch workers)" % (
            ingest["batch_size"], ingest["image_size"], ingest["fetch_workers"]), "",
            "| end to end img/s | raw forward img/s | ratio | goal >= 0.80 |", "|---|---|---|---|",
            f"| {ingest['end_to_end_per_s']:.2f} | {ingest['raw_forward_per_s']:.2f} | {ingest['ratio']:.2f} | "
            f"{_mark(ingest['ratio'] >= INGEST_RATIO_GOAL)} |", ""]
        variants = ingest.get("fetch_worker_variants") or []
        if len(variants) > 1:
            lines += ["Fetch/preprocess threads, same run: " + ", ".join(
                f"{v['fetch_workers']} worker(s) {v['end_to_end_per_s']:.2f} img/s (ratio {v['ratio']:.2f})" for v in variants), ""]
    text = results.get("ingest_text")
    if text:
        lines += ["**Ingest, text** (%s, first %d tokens, batch %d, %d SpamAssassin emails of %.0f tokens on average, "
                  "%d fetch workers)" % (text["model"], text["max_tokens"], text["batch_size"], text["texts"],
                                         text["tokens_per_text_mean"], text["fetch_workers"]), "",
                  "| task text | end to end texts/s | raw forward texts/s | ratio | goal >= 0.80 |", "|---|---|---|---|---|",
                  f"| inline | {text['end_to_end_per_s']:.1f} | {text['raw_forward_per_s']:.1f} | {text['ratio']:.2f} | "
                  f"{_mark(text['ratio'] >= INGEST_RATIO_GOAL)} |",
                  f"| local file (valueType=\"url\") | {text['local_file_end_to_end_per_s']:.1f} | "
                  f"{text['raw_forward_per_s']:.1f} | {text['local_file_ratio']:.2f} | "
                  f"{_mark(text['local_file_ratio'] >= INGEST_RATIO_GOAL)} |", ""]
    rows = results.get("selection") or []
    if rows:
        lines += ["**Selection** (top-%d unseen nearest to W; ours = `VectorStore.pool` + `NearestStrategy`)" % rows[0]["k"], "",
                  "| N | seen | recall@k (min) | p50 ms | p95 ms | exact scan p95 ms | p95 ratio | goal |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            ratio = r["p95_ms"] / r["exact_scan_p95_ms"]
            ok = r["min_recall_at_k"] == 1.0 and ratio <= SELECTION_LATENCY_RATIO_GOAL
            lines.append(f"| {r['n']:,} | {r['seen_fraction']:.0%} | {r['recall_at_k']:.3f} ({r['min_recall_at_k']:.2f}) | "
                         f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['exact_scan_p95_ms']:.1f} | {ratio:.2f} | {_mark(ok)} |")
        chroma = [r for r in rows if r.get("chroma_hnsw")]
        if chroma:
            lines += ["", "Chroma serving the same queries (HNSW, Chroma's default settings):", "",
                      "| N | seen | filtered `where seen=False`: recall@k | p95 ms | over-fetch x%d + filter: recall@k | p95 ms |"
                      % chroma[0]["chroma_hnsw"]["overfetch_factor"], "|---|---|---|---|---|---|"]
            for r in chroma:
                c = r["chroma_hnsw"]
                lines.append(f"| {r['n']:,} | {r['seen_fraction']:.0%} | {c['filtered_recall_at_k']:.2f} | {c['filtered_p95_ms']:.1f} | "
                             f"{c['overfetch_recall_at_k']:.2f} | {c['overfetch_p95_ms']:.1f} |")
        lines.append("")
    retrain = results.get("retrain") or []
    if retrain:
        lines += ["**Retrain** (`fit_head`: prompt prior + 200 background vectors, L-BFGS)", "",
                  "| ratings | p50 ms | p95 ms | L-BFGS iterations |", "|---|---|---|---|"]
        lines += [f"| {r['ratings']:,} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['lbfgs_iterations_median']:.0f} |" for r in retrain]
        lines.append("")
    rounds = results.get("round") or []
    if rounds:
        lines += ["**Round** (ANNOTATION_CREATED webhook arrives -> new batch visible in the Label Studio view; "
                  "real Label Studio + backend processes)", "",
                  "| tasks | rounds | p50 ms | p95 ms | max ms | score order final p50 / p95 ms | from annotation POST p50 / p95 ms | goal p95 <= 1 s at 100k |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rounds:
            goal = _mark(r["p95_ms"] <= ROUND_P95_GOAL_MS) if r["tasks"] >= ROUND_GOAL_TASKS else "-"
            lines.append(f"| {r['tasks']:,} | {r['rounds']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | "
                         f"{r['ordered_p50_ms']:.0f} / {r['ordered_p95_ms']:.0f} | "
                         f"{r['from_annotation_post_p50_ms']:.0f} / {r['from_annotation_post_p95_ms']:.0f} | {goal} |")
        lines.append("")
    store = results.get("store") or {}
    if store:
        lines += ["**Store** (Chroma 1.5, 512-d, `VectorStore.upsert` in batches of Chroma's max batch size)", "",
                  "| N | upsert vectors/s | RSS MiB (Chroma + mirror) | bytes/vector | mirror reload s |", "|---|---|---|---|---|"]
        for b in store.get("builds", []):
            lines.append(f"| {b['n']:,} | {b['upsert_per_s']:.0f} | {b['rss_bytes'] / 2**20:.0f} | {b['rss_bytes_per_vector']:.0f} | "
                         f"{b['mirror_load_s']:.1f} |")
        if "rss_gib_per_million" in store:
            lines += ["", f"Resident memory per million vectors: **{store['rss_gib_per_million']:.2f} GiB** ({store['rss_basis']})."]
        if results.get("upsert_per_s") is not None:
            lines.append(f"Upsert headline: **{results['upsert_per_s']:.0f} vectors/s** ({store.get('upsert_basis')}); "
                         f"goal >= 3,000: {_mark(results['upsert_per_s'] >= UPSERT_GOAL_PER_S)}.")
        if store.get("hnsw_variants"):
            lines += ["", "| HNSW settings | upsert vectors/s |", "|---|---|"]
            lines += [f"| {v['hnsw']} | {v['upsert_per_s']:.0f} |" for v in store["hnsw_variants"]]
        if store.get("client_server"):
            c = store["client_server"]
            lines += ["", f"Client/server (`chroma run` on loopback, `HttpClient`), {c['vectors']:,} vectors: upsert "
                      f"{c['upsert_per_s']:.0f}/s (embedded, same vectors: {c['embedded_upsert_per_s_same_vectors']:.0f}/s); "
                      f"mirror reload {c['mirror_load_s']:.1f} s."]
        lines.append("")
    verdicts = goals(results)
    lines += ["**Goals**: " + ", ".join(f"{name} {_mark(ok)}" for name, ok in verdicts.items())]
    return "\n".join(lines)


def update_markdown(path: Path, table: str) -> None:
    """Replace the generated table between the markers in `path` (the prose around it is hand-written)."""
    replace_block(path, TABLE_BLOCK, table)


def summary_table(results: dict) -> str:
    """The README's view: one row per measure, the goal, and whether it was met."""
    verdicts = goals(results)
    rows = ["| measure | result | goal | |", "|---|---|---|---|"]
    ingest = results.get("ingest")
    if ingest:
        rerun = results.get("ingest_rerun")
        again = f"; run again alone: {rerun['ratio']:.2f}" if rerun else ""
        rows.append(f"| ingest, end to end / raw CLIP forward (ViT-B/32, CPU) | {ingest['end_to_end_per_s']:.2f} / "
                    f"{ingest['raw_forward_per_s']:.2f} img/s = {ingest['ratio']:.2f}{again} | >= {INGEST_RATIO_GOAL:.2f} | "
                    f"{_mark(verdicts['ingest_ratio_ge_0.8'])} |")
    text = results.get("ingest_text")
    if text:
        rows.append(f"| ingest, end to end / raw MiniLM forward (texts, CPU) | {text['end_to_end_per_s']:.1f} / "
                    f"{text['raw_forward_per_s']:.1f} texts/s = {text['ratio']:.2f} | >= {INGEST_RATIO_GOAL:.2f} | "
                    f"{_mark(verdicts['ingest_text_ratio_ge_0.8'])} |")
    selection = results.get("selection") or []
    if selection:
        ns = "/".join(f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" for n in sorted({r["n"] for r in selection}))
        ratios = [r["p95_ms"] / r["exact_scan_p95_ms"] for r in selection]
        rows.append(f"| selection recall@k, N = {ns}, 0-50% seen | {min(r['min_recall_at_k'] for r in selection):.3f} "
                    f"(lowest) | 1.0 | {_mark(verdicts['selection_recall_1'])} |")
        rows.append(f"| selection p95 / exact scan p95 | {min(ratios):.2f}-{max(ratios):.2f}x "
                    f"({min(r['p95_ms'] for r in selection):.0f}-{max(r['p95_ms'] for r in selection):.0f} ms) | "
                    f"<= {SELECTION_LATENCY_RATIO_GOAL}x | {_mark(verdicts['selection_p95_le_1.5x_exact'])} |")
    retrain = results.get("retrain") or []
    if retrain:
        rows.append("| retrain p50, " + " / ".join(f"{r['ratings']:,}" for r in retrain) + " ratings | "
                    + " / ".join(f"{r['p50_ms']:.0f}" for r in retrain) + " ms | - | |")
    for r in results.get("round") or []:
        goal = r["tasks"] >= ROUND_GOAL_TASKS
        rows.append(f"| round p50 / p95, webhook -> new batch in the view, {r['tasks']:,} tasks | {r['p50_ms']:.0f} / "
                    f"{r['p95_ms']:.0f} ms | {'p95 <= 1 s' if goal else '-'} | "
                    f"{_mark(r['p95_ms'] <= ROUND_P95_GOAL_MS) if goal else ''} |")
    if results.get("upsert_per_s") is not None:
        rows.append(f"| Chroma upsert, 512-d | {results['upsert_per_s']:,.0f} vectors/s | >= {UPSERT_GOAL_PER_S:,.0f} | "
                    f"{_mark(verdicts['upsert_ge_3000_per_s'])} |")
    store = results.get("store") or {}
    if "rss_gib_per_million" in store:
        rows.append(f"| resident memory (Chroma + selection mirror) | {store['rss_gib_per_million']:.2f} GiB per million "
                    "vectors | - | |")
    return "\n".join(rows)


def plots(results: dict, folder: Path) -> list[Path]:
    """Small PNGs beside the JSON: selection latency vs N, round latencies, retrain time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = results.get("selection") or []
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        for fraction in sorted({r["seen_fraction"] for r in rows}):
            sel = sorted((r for r in rows if r["seen_fraction"] == fraction), key=lambda r: r["n"])
            ax.plot([r["n"] for r in sel], [r["p95_ms"] for r in sel], "o-", label=f"ours, {fraction:.0%} seen")
            ax.plot([r["n"] for r in sel], [r["exact_scan_p95_ms"] for r in sel], "x--", color="grey", alpha=0.6)
        ax.set(xscale="log", yscale="log", xlabel="vectors (512-d)", ylabel="p95 latency ms", title="Selection (grey: bare exact scan)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, folder / "performance-selection.png"))
        plt.close(fig)
    rounds = results.get("round") or []
    if rounds:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        for r in rounds:
            values = sorted(r["latencies_ms"])
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], drawstyle="steps-post", label=f"{r['tasks']:,} tasks")
        ax.axvline(ROUND_P95_GOAL_MS, color="red", linestyle=":", label="goal (p95)")
        ax.set(xlabel="annotation -> new batch visible, ms", ylabel="fraction of rounds", title="Round latency (CDF)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, folder / "performance-round.png"))
        plt.close(fig)
    retrain = results.get("retrain") or []
    if retrain:
        fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
        ax.bar([f"{r['ratings']:,}" for r in retrain], [r["p50_ms"] for r in retrain])
        ax.set(xlabel="ratings", ylabel="refit p50 ms", title="Retrain")
        fig.tight_layout()
        written.append(_save(fig, folder / "performance-retrain.png"))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    return path
