"""Hostile-load run: a real project annotated as usual while the backend is attacked, all on loopback.

    python -m scripts.hostile_load [--rounds 30] [--tasks 500] [--readme]

Starts Label Studio (fresh data dir) and the backend (tiny random CLIP, 512-d) on 127.0.0.1,
and an image server that drips its response headers one byte every 0.5 s (no fetch ever gets
a whole response within FETCH_TIMEOUT_S). A real project gets --tasks tasks and a prompt; an
annotator rates the top task of the "Next batch (ML)" tab and waits for the new batch, timed
from the rating's webhook to the new batch visible in the view (as benchmarks/perf/rounds.py
does). First --rounds rounds with nothing else going on (idle), then --rounds more while:

- the dripping source serves the images of tasks in a second project and of tasks planted in
  the real one;
- 1,000 webhooks arrive for made-up project ids;
- every --admin-every seconds, 20 concurrent admin calls (POST /projects/<id>/next-batch,
  half for each project).

Then it waits for the backend to settle and checks it against Label Studio: every annotation
counted with its current value, every task embedded (the dripping ones failed, "timed out"),
the current version's prediction on every task, nothing kept about the made-up projects.
Writes benchmarks/results/hostile_load.json and .md; --readme also puts the summary table in
the README. Goal: the idle p95 doubled, at most, under hostile load, and nothing lost.
Bounded: each phase is bounded by its rounds (30 s timeout each) and the settle by --settle-timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from label_studio_sdk import LabelStudio

from benchmarks.markdown import README, replace_block
from benchmarks.perf.common import machine_info, percentile_ms
from benchmarks.perf.rounds import CLIENT_TIMEOUT_S, EMBEDDING_DIM, backend_status, import_tasks, run_rounds
from ml_backend.adapters.ls_admin import connect_backend, create_project

from .make_tiny_clip import build_tiny_clip
from .servers import ROOT, BackendServer, LabelStudioServer, free_port

RESULTS = ROOT / "benchmarks" / "results"
README_BLOCK = "hostile-load-summary"
LABEL_CONFIG = (ROOT / "label_config.xml").read_text()
CHOICES = {"+1": 1.0, "0": 0.0, "-1": -1.0}
GOAL_RATIO = 2.0
UNKNOWN_WEBHOOKS = 1000
ADMIN_WAVE = 20
DRIP_BYTE_S = 0.5
FLOOD_AGENT = "hostile-load-flood"


class DrippingImageServer:
    """Answers every GET with a status line and headers dripped one byte per DRIP_BYTE_S."""

    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n"
                try:
                    for byte in head:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(DRIP_BYTE_S)
                except OSError:
                    pass  # the backend gave up, as it should
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class HostileLoad:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="hostile-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(args.seed)
        self.timeline: list[str] = []
        self.started = time.monotonic()

    def log(self, message: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f} s  {message}"
        self.timeline.append(line)
        print(line, flush=True)

    # -- setup ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.log(f"work dir {self.work}")
        self.drip = DrippingImageServer()
        self.ls = LabelStudioServer(self.work / "ls-data", free_port(), self.work / "ls-files")
        self.ls.start(log_path=self.work / "label-studio.log")
        clip = build_tiny_clip(self.work / "tiny-clip", projection_dim=EMBEDDING_DIM)
        port = free_port()
        self.backend = BackendServer(port, {
            "LABEL_STUDIO_URL": self.ls.url, "LABEL_STUDIO_API_KEY": self.ls.api_token,
            "MODEL_DIR": str(self.work / "model_dir"), "CLIP_MODEL": str(clip), "HF_HUB_OFFLINE": "1",
            "BACKEND_URL": f"http://127.0.0.1:{port}", "LOG_LEVEL": "INFO", "TORCH_THREADS": "1",
            # The dripping source is on loopback: allowed, so it is fetched (and dripped on).
            "IMAGE_HOSTS": "127.0.0.1", "FETCH_TIMEOUT_S": str(self.args.fetch_timeout),
        }, log_path=self.work / "backend.log").start()
        self.client = LabelStudio(base_url=self.ls.url, api_key=self.ls.api_token, timeout=CLIENT_TIMEOUT_S)
        self.project = create_project(self.client, "real project", LABEL_CONFIG)
        connect_backend(self.client, self.project, self.backend.url, "CLIP vector queue",
                        {"prompt": "a photo of a dog", "batch_size": 10})
        import_tasks(self.client, self.project, self.args.tasks, seed=7)
        self.wait_settled(self.project, self.args.tasks)
        self.log(f"project {self.project}: {self.args.tasks} tasks embedded and predicted")

    def stop(self) -> None:
        for stop in (lambda: self.backend.stop(), lambda: self.ls.stop(), lambda: self.drip.close()):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass

    def wait_settled(self, project: int, tasks: int, timeout_s: float = 600.0) -> dict:
        deadline = time.monotonic() + timeout_s
        status: dict = {}
        while time.monotonic() < deadline:
            status = backend_status(self.backend, project)
            done = status["tasks"]["embedded"] + status["tasks"]["failed"]
            if done >= tasks and status["worker"]["idle"] and status.get("view"):
                return status
            time.sleep(1.0)
        raise TimeoutError(f"project {project} did not settle in {timeout_s:.0f} s: {status.get('tasks')}")

    # -- the hostile load ----------------------------------------------------------------------------------
    def plant_dripping_tasks(self) -> None:
        """Tasks whose images the dripping source serves: in a second project, and in the real one."""
        self.hostile = create_project(self.client, "hostile project", LABEL_CONFIG)
        connect_backend(self.client, self.hostile, self.backend.url, "CLIP vector queue", {"batch_size": 10})
        self.drip_tasks = {self.hostile: self.args.drip_tasks, self.project: self.args.drip_tasks_in_real}
        for project, count in self.drip_tasks.items():
            self.client.projects.import_tasks(id=project, request=[
                {"image": f"{self.drip.url}/{project}/{i}.png"} for i in range(count)])
        self.log(f"dripping source: {self.args.drip_tasks} tasks in project {self.hostile}, "
                 f"{self.args.drip_tasks_in_real} planted in project {self.project}")

    def unknown_webhooks(self, results: list, wall: list) -> None:
        """UNKNOWN_WEBHOOKS webhooks for made-up project ids, 8 at a time, spread over --flood-seconds."""
        actions = ["TASKS_CREATED", "ANNOTATION_CREATED", "START_TRAINING", "PROJECT_UPDATED"]
        made_up = random.Random(self.args.seed + 1).sample(range(10_000, 10**9), UNKNOWN_WEBHOOKS)
        interval = self.args.flood_seconds / UNKNOWN_WEBHOOKS
        sessions = threading.local()
        started = time.monotonic()

        def send(index: int) -> tuple[int, float]:
            body = {"action": actions[index % len(actions)], "project": {"id": made_up[index], "label_config": LABEL_CONFIG},
                    "tasks": [{"id": index + 1, "data": {"image": f"{self.drip.url}/x.png"}}],
                    "annotation": {"id": index + 1, "task": index + 1, "result": []}}
            if not hasattr(sessions, "session"):
                sessions.session = requests.Session()
                sessions.session.headers["User-Agent"] = FLOOD_AGENT  # told apart from Label Studio's in the access log
            begin = time.perf_counter()
            try:
                code = sessions.session.post(f"{self.backend.url}/webhook", json=body, timeout=30).status_code
            except Exception:  # noqa: BLE001 - counted as "no answer"
                code = 0
            return code, time.perf_counter() - begin

        wall.append(time.time())
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = []
            for index in range(UNKNOWN_WEBHOOKS):
                futures.append(pool.submit(send, index))
                time.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
            results.extend(f.result() for f in futures)
        wall.append(time.time())

    def admin_waves(self, results: list, stop: threading.Event) -> None:
        """Every --admin-every s, ADMIN_WAVE concurrent next-batch calls, half for each project."""
        def call(project: int) -> tuple[int, float]:
            begin = time.perf_counter()
            try:
                code = requests.post(f"{self.backend.url}/projects/{project}/next-batch", timeout=60).status_code
            except requests.RequestException:
                code = 0
            return code, time.perf_counter() - begin

        with ThreadPoolExecutor(max_workers=ADMIN_WAVE) as pool:
            futures = []
            while not stop.is_set():
                futures += [pool.submit(call, self.project if i % 2 else self.hostile) for i in range(ADMIN_WAVE)]
                stop.wait(self.args.admin_every)
            results.extend(f.result() for f in futures)

    # -- run --------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        self.start()
        phases = {}
        load = {"before idle": os.getloadavg()}
        self.log(f"idle: {self.args.rounds} rounds")
        began = time.time()
        phases["idle"] = {**run_rounds(self.client, self.backend, self.project, self.args.rounds, self.args.think_s),
                          "wall": [began, time.time()]}
        load["before hostile"] = os.getloadavg()
        self.log(f"idle p95 {phases['idle']['p95_ms']:.0f} ms; hostile load starts")
        began = time.time()
        self.plant_dripping_tasks()
        stop, flood, flood_wall, admin = threading.Event(), [], [], []
        threads = [threading.Thread(target=self.unknown_webhooks, args=(flood, flood_wall)),
                   threading.Thread(target=self.admin_waves, args=(admin, stop))]
        for thread in threads:
            thread.start()
        rounds = run_rounds(self.client, self.backend, self.project, self.args.rounds, self.args.think_s)
        rounds_ended = time.time()
        stop.set()
        for thread in threads:
            thread.join()
        phases["hostile"] = {**rounds, "wall": [began, time.time()], "rounds_ended": rounds_ended}
        self.flood_wall = flood_wall
        load["after hostile"] = os.getloadavg()
        self.log(f"hostile p95 {rounds['p95_ms']:.0f} ms; settling")
        settled = self.settle()
        return self.results(phases, flood, admin, settled, load)

    def settle(self) -> float:
        started = time.monotonic()
        real_tasks = self.args.tasks + self.args.drip_tasks_in_real
        for project, tasks in ((self.project, real_tasks), (self.hostile, self.args.drip_tasks)):
            self.wait_settled(project, tasks, timeout_s=max(1.0, self.args.settle_timeout - (time.monotonic() - started)))
        return time.monotonic() - started

    # -- results --------------------------------------------------------------------------------------------
    def results(self, phases: dict, flood: list, admin: list, settled_s: float, load: dict) -> dict:
        idle, hostile = phases["idle"], phases["hostile"]
        webhook_times = self.label_studio_webhooks(hostile["wall"])
        flood_codes = [code for code, _ in flood]
        admin_codes = [code for code, _ in admin]
        return {
            "meta": {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
                     "load_average": {k: [round(x, 2) for x in v] for k, v in load.items()},
                     "settings": {k: v for k, v in vars(self.args).items() if k not in ("workdir", "readme")}},
            "idle": {k: v for k, v in idle.items() if k != "wall"},
            "hostile": {k: v for k, v in hostile.items() if k not in ("wall", "rounds_ended")},
            "p95_ratio": round(hostile["p95_ms"] / idle["p95_ms"], 2),
            "goal_ratio": GOAL_RATIO,
            "unknown_webhooks": {"sent": len(flood), "answered_404": flood_codes.count(404),
                                 "started_s_into_hostile": round(self.flood_wall[0] - hostile["wall"][0], 1),
                                 "ended_s_before_last_round": round(hostile["rounds_ended"] - self.flood_wall[1], 1),
                                 "other_answers": sorted(set(flood_codes) - {404}),
                                 "p95_ms": percentile_ms([s for _, s in flood], 95),
                                 "max_ms": percentile_ms([s for _, s in flood], 100)},
            "admin_calls": {"sent": len(admin), "waited_200": admin_codes.count(200), "answered_at_once_202": admin_codes.count(202),
                            "other_answers": sorted(set(admin_codes) - {200, 202}),
                            "p95_ms": percentile_ms([s for _, s in admin], 95), "max_ms": percentile_ms([s for _, s in admin], 100)},
            "label_studio_webhooks_during_hostile": {"count": len(webhook_times), "p95_ms": percentile_ms(webhook_times, 95),
                                                     "max_ms": percentile_ms(webhook_times, 100)},
            "dripping_source": {"requests": self.drip.requests, **self.dripping_outcome()},
            "settled_s": round(settled_s, 1),
            "checks": self.checks(),
            "timeline": self.timeline,
        }

    def label_studio_webhooks(self, wall: list[float]) -> list[float]:
        """Seconds the backend took for each webhook Label Studio sent during the hostile phase (access log)."""
        seconds = []
        # the app's access line (service.app), after the log's local time: ... "user agent" seconds
        pattern = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*"POST /webhook HTTP/1\.1" \d+ \S+ "([^"]*)" ([\d.]+)$')
        for line in (self.work / "backend.log").read_text().splitlines():
            match = pattern.search(line)
            if match and match.group(2) != FLOOD_AGENT:
                at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
                if wall[0] - 1 <= at <= wall[1] + 1:
                    seconds.append(float(match.group(3)))
        return seconds

    def dripping_outcome(self) -> dict:
        failed, reasons = 0, set()
        for project in self.drip_tasks:
            for error in backend_status(self.backend, project)["task_errors"]:
                failed += 1
                reasons.add("timed out" if "timed out" in error["error"] else error["error"][:80])
        return {"tasks": sum(self.drip_tasks.values()), "failed": failed, "reasons": sorted(reasons)}

    def checks(self) -> dict:
        """The real project against Label Studio, and what the ledger keeps: sent / processed rows."""
        status = backend_status(self.backend, self.project)
        version = status["model_version"]
        tasks = list(self.client.tasks.list(project=self.project, fields="all"))
        truth = {}
        for task in tasks:
            for a in task.annotations:
                a = a if isinstance(a, dict) else a.model_dump()
                choice = a["result"][0]["value"]["choices"][0] if a.get("result") else None
                truth[int(a["id"])] = None if a.get("was_cancelled") else CHOICES.get(choice)
        with sqlite3.connect(f"file:{self.work / 'model_dir' / 'ledger.sqlite'}?mode=ro", uri=True) as db:
            ledger = dict(db.execute("SELECT annotation_id, target FROM annotations WHERE project = ?", (self.project,)))
            embedded = {r[0] for r in db.execute("SELECT task_id FROM tasks WHERE project = ? AND state = 'embedded'",
                                                 (self.project,))}
            projects = sorted(r[0] for r in db.execute("SELECT id FROM projects"))
        drip_prefix = f"{self.drip.url}/"
        normal = {int(t.id) for t in tasks if not str(t.data.get("image", "")).startswith(drip_prefix)}
        predicted = sum(1 for t in tasks if int(t.id) in normal and [self.version_of(p) for p in t.predictions] == [version])
        rows = {
            "annotations (in Label Studio) counted with their current value": (len(truth), sum(
                1 for a, target in truth.items() if a in ledger and ledger[a] == target)),
            "tasks with a usable image, embedded": (len(normal), len(normal & embedded)),
            "tasks with a usable image, current-version prediction": (len(normal), predicted),
            "projects kept by the backend (real ones only)": (2, 2 if projects == sorted([self.project, self.hostile]) else 0),
        }
        return {"rows": {k: {"sent": s, "processed": p, "lost": s - p} for k, (s, p) in rows.items()},
                "lost": sum(s - p for s, p in rows.values()), "ledger_projects": projects, "model_version": version}

    @staticmethod
    def version_of(prediction) -> str:
        return prediction["model_version"] if isinstance(prediction, dict) else prediction.model_version


# -- rendering (the README block and the .md are generated from the JSON) ----------------------------------------
def summary_table(results: dict) -> str:
    idle, hostile = results["idle"], results["hostile"]
    flood, admin = results["unknown_webhooks"], results["admin_calls"]
    hooks, drip, checks = results["label_studio_webhooks_during_hostile"], results["dripping_source"], results["checks"]
    met = results["p95_ratio"] <= results["goal_ratio"]
    load = results["meta"]["load_average"]
    lines = [
        "| measure | idle | under hostile load | goal | |",
        "|---|---:|---:|---|---|",
        f"| rating -> new batch in the view, p95 ({idle['rounds']} rounds each) | {idle['p95_ms']:.0f} ms | "
        f"{hostile['p95_ms']:.0f} ms ({results['p95_ratio']:.2f}x) | <= {results['goal_ratio']:.0f}x idle | "
        f"{'met' if met else '**missed**'} |",
        f"| rating -> new batch in the view, p50 | {idle['p50_ms']:.0f} ms | {hostile['p50_ms']:.0f} ms | - | |",
        f"| Label Studio's webhooks, backend time p95 / max | - | {hooks['p95_ms']:.0f} / {hooks['max_ms']:.0f} ms "
        f"({hooks['count']}) | < 1 s | {'met' if hooks['max_ms'] < 1000 else '**missed**'} |",
        f"| webhooks for made-up projects | - | {flood['answered_404']} of {flood['sent']} answered 404, "
        f"p95 {flood['p95_ms']:.0f} ms{', all while the rounds ran' if flood['ended_s_before_last_round'] >= 0 else ''} "
        f"| 4xx, nothing kept | "
        f"{'met' if flood['answered_404'] == flood['sent'] and checks['ledger_projects'] and len(checks['ledger_projects']) == 2 else '**missed**'} |",
        f"| concurrent admin calls (next-batch, waves of {ADMIN_WAVE}) | - | {admin['sent']}: {admin['waited_200']} waited, "
        f"{admin['answered_at_once_202']} answered at once (202) | - | |",
        f"| tasks on the dripping image source | - | {drip['failed']} of {drip['tasks']} failed "
        f"({', '.join(drip['reasons']) or '-'}), {drip['requests']} fetches | each fetch <= FETCH_TIMEOUT_S | |",
        f"| lost (checked against Label Studio) | - | {checks['lost']} | 0 | {'met' if checks['lost'] == 0 else '**missed**'} |",
    ]
    lines += ["", f"Measured {results['meta']['finished']} with `python -m scripts.hostile_load` "
                  f"(FETCH_TIMEOUT_S {results['meta']['settings']['fetch_timeout']}, {results['meta']['settings']['tasks']} "
                  f"tasks, tiny random 512-d CLIP) on {results['meta']['machine']['cpu_count']} shared CPU cores; load "
                  "average " + ", ".join(f"{k} {v[0]:.1f}" for k, v in load.items()) + "."]
    return "\n".join(lines)


def markdown_report(results: dict) -> str:
    checks = results["checks"]
    lines = ["# Hostile-load run", "", summary_table(results), "",
             "| checked against Label Studio | sent | processed | lost |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {row['sent']} | {row['processed']} | {row['lost']} |" for name, row in checks["rows"].items()]
    lines += ["", f"Rounds (ms), idle: {results['idle']['latencies_ms']}", "",
              f"Rounds (ms), hostile: {results['hostile']['latencies_ms']}", "", "Timeline:", ""]
    lines += [f"- {line}" for line in results["timeline"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per phase (idle, hostile)")
    parser.add_argument("--tasks", type=int, default=500, help="tasks in the real project")
    parser.add_argument("--think-s", type=float, default=1.0, help="annotator pause between rounds")
    parser.add_argument("--drip-tasks", type=int, default=8, help="tasks on the dripping source in the second project")
    parser.add_argument("--drip-tasks-in-real", type=int, default=3, help="... and planted in the real project")
    parser.add_argument("--flood-seconds", type=float, default=40.0, help="the 1,000 unknown webhooks are spread over this")
    parser.add_argument("--admin-every", type=float, default=10.0, help="seconds between waves of admin calls")
    parser.add_argument("--fetch-timeout", type=float, default=10.0, help="the backend's FETCH_TIMEOUT_S")
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--readme", action="store_true", help="put the summary table in the README")
    args = parser.parse_args()
    run = HostileLoad(args)
    try:
        results = run.run()
    finally:
        run.stop()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "hostile_load.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out_dir / "hostile_load.md").write_text(markdown_report(results))
    if args.readme:
        replace_block(README, README_BLOCK, summary_table(results))
    print("\n" + summary_table(results))
    sys.exit(0 if results["checks"]["lost"] == 0 and results["p95_ratio"] <= GOAL_RATIO else 1)


if __name__ == "__main__":
    main()
