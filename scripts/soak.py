"""Fault and soak run: mixed load on a real Label Studio and a real backend, then count what was lost.

    python -m scripts.soak --duration 120 --max-events 2000 [--out benchmarks/results/reliability.md]

Everything runs on loopback and is bounded in time (--duration of load, then at most
--settle-timeout to catch up) and in count (--max-events). It starts Label Studio
(fresh data dir) and the backend (tiny random CLIP unless --clip-model), the backend
reaching Label Studio through a fault proxy, then for --duration seconds:

- imports: batches of images uploaded to Label Studio (TASKS_CREATED webhooks);
- annotators: several threads creating, updating, skipping and deleting annotations
  through the SDK (ANNOTATION_* webhooks);
- faults: kill -9 of the backend and restart (twice), a full Label Studio outage
  (process stopped, then started again), a network partition between backend and
  Label Studio (the proxy refuses connections; webhooks still arrive).

Then it waits for the backend to settle and checks it against Label Studio, the
source of truth: every task embedded, every annotation counted exactly once with
its current value, the current model version's prediction on every task, the
ledger and Chroma in agreement. It prints events sent / processed / lost and exits
1 if anything was lost.
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, upload_images

from .fault_proxy import FaultProxy
from .make_tiny_clip import build_tiny_clip
from .servers import ROOT, BackendServer, LabelStudioServer, free_port

LABEL_CONFIG = (ROOT / "label_config.xml").read_text()
CHOICES = {"+1": 1.0, "0": 0.0, "-1": -1.0}


@dataclass
class Tally:
    """What the load generators attempted (Label Studio is asked for what actually exists)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter = field(default_factory=Counter)
    task_ids: list[int] = field(default_factory=list)
    annotated: dict[int, int] = field(default_factory=dict)  # annotation id -> task id
    taken: set[int] = field(default_factory=set)
    create_seconds: list[float] = field(default_factory=list)  # annotations.create, which waits for the webhook
    phase: str = ""  # "backend dead" / "partition" while that fault lasts

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    @property
    def events(self) -> int:
        with self.lock:
            return sum(v for k, v in self.counts.items() if not k.startswith(("failed", "fault")))


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.tally = Tally()
        self.stop_load = threading.Event()
        self.ls_up = threading.Event()
        self.image_seq = 0
        self.timeline: list[str] = []
        self.started = 0.0

    # -- setup -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.log(f"work dir {self.work}")
        self.ls = LabelStudioServer(self.work / "ls-data", free_port(), self.work / "ls-files")
        self.ls.start(log_path=self.work / "label-studio.log")
        self.ls_up.set()
        self.proxy = FaultProxy("127.0.0.1", self.ls.port).start()
        clip = self.args.clip_model or str(build_tiny_clip(self.work / "tiny-clip"))
        self.model_dir = self.work / "model_dir"
        port = free_port()
        self.backend = BackendServer(port, {
            "LABEL_STUDIO_URL": self.proxy.url, "LABEL_STUDIO_API_KEY": self.ls.api_token, "MODEL_DIR": str(self.model_dir),
            "CLIP_MODEL": clip, "HF_HUB_OFFLINE": "1", "BACKEND_URL": f"http://127.0.0.1:{port}", "POLL_INTERVAL_S": "0.5",
            "MAX_BACKOFF_S": "5", "LABEL_STUDIO_TIMEOUT_S": "5", "LOG_LEVEL": "INFO",
        }, log_path=self.work / "backend.log").start()
        self.client = admin_client(self.ls.url, self.ls.api_token)
        self.project = create_project(self.client, "soak", LABEL_CONFIG)
        connect_backend(self.client, self.project, self.backend.url, "CLIP vector queue",
                        {"prompt": "a red square", "batch_size": 10})

    def stop(self) -> None:
        for stop in (lambda: self.backend.stop(), lambda: self.proxy.stop(), lambda: self.ls.stop()):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass

    # -- load ----------------------------------------------------------------------------------------
    def importer(self) -> None:
        while not self.stop_load.is_set() and self.tally.events < self.args.max_events:
            if not self.ls_up.wait(1):
                continue
            count = self.rng.randint(5, 25)
            paths = [self.new_image() for _ in range(count)]
            try:
                ids = upload_images(self.ls.url, self.ls.api_token, self.project, paths)
            except Exception:  # noqa: BLE001 - Label Studio may be going down right now
                self.tally.add("failed import requests")
            else:
                with self.tally.lock:
                    self.tally.task_ids.extend(ids)
                self.tally.add("tasks imported", len(ids))
            self.stop_load.wait(self.rng.uniform(1.5, 4.0))

    def annotator(self, seed: int) -> None:
        rng = random.Random(seed)
        client = admin_client(self.ls.url, self.ls.api_token)
        while not self.stop_load.is_set() and self.tally.events < self.args.max_events:
            if not self.ls_up.wait(1):
                continue
            roll = rng.random()
            try:
                if roll < 0.12 and self.tally.annotated:
                    self.update_one(client, rng)
                elif roll < 0.16 and self.tally.annotated:
                    self.delete_one(client, rng)
                else:
                    self.create_one(client, rng, skip=roll > 0.93)
            except Exception:  # noqa: BLE001 - Label Studio down or busy: the event did not happen
                self.tally.add("failed annotation requests")
            self.stop_load.wait(rng.uniform(0.05, 0.4))

    def create_one(self, client, rng: random.Random, skip: bool) -> None:
        with self.tally.lock:
            free = [t for t in self.tally.task_ids if t not in self.tally.taken]
            if not free:
                return
            task = rng.choice(free)
            self.tally.taken.add(task)
        result = [] if skip else [{"from_name": "relevance", "to_name": "image", "type": "choices",
                                   "value": {"choices": [rng.choice(list(CHOICES))]}}]
        started = time.perf_counter()
        annotation = client.annotations.create(id=task, result=result, was_cancelled=skip)
        with self.tally.lock:
            self.tally.annotated[int(annotation.id)] = task
            self.tally.create_seconds.append(time.perf_counter() - started)
            phase = self.tally.phase
        self.tally.add("annotations skipped" if skip else "annotations created")
        if phase:
            self.tally.add(f"annotations created or skipped while {phase}")

    def update_one(self, client, rng: random.Random) -> None:
        with self.tally.lock:
            annotation = rng.choice(list(self.tally.annotated))
        result = [{"from_name": "relevance", "to_name": "image", "type": "choices",
                   "value": {"choices": [rng.choice(list(CHOICES))]}}]
        client.annotations.update(id=annotation, result=result, was_cancelled=False)
        self.tally.add("annotations updated")

    def delete_one(self, client, rng: random.Random) -> None:
        with self.tally.lock:
            annotation = rng.choice(list(self.tally.annotated))
            task = self.tally.annotated.pop(annotation)
        client.annotations.delete(id=annotation)
        with self.tally.lock:
            self.tally.taken.discard(task)
        self.tally.add("annotations deleted")

    def new_image(self) -> Path:
        self.image_seq += 1
        rng = np.random.default_rng(self.image_seq)
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        path = self.work / "images" / f"soak-{self.image_seq:05d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(blocks).resize((64, 64), Image.NEAREST).save(path)
        return path

    # -- faults --------------------------------------------------------------------------------------
    def faults(self) -> None:
        d = self.args.duration
        schedule = [(0.20, self.kill_backend), (0.40, self.label_studio_outage), (0.65, self.partition),
                    (0.85, self.kill_backend)]
        for at, fault in schedule:
            if self.stop_load.wait(max(0.0, self.started + at * d - time.monotonic())):
                return
            fault()

    def kill_backend(self) -> None:
        self.log("fault: kill -9 backend")
        self.backend.kill()
        self.tally.add("fault: backend kill -9")
        self.tally.phase = "the backend was dead (webhooks lost)"
        time.sleep(3)  # annotations made now reach a dead backend: their webhooks are lost
        self.backend.start()
        self.tally.phase = ""
        self.log("backend restarted")

    def label_studio_outage(self) -> None:
        self.log("fault: Label Studio stopped")
        self.ls_up.clear()
        self.ls.stop()
        self.tally.add("fault: Label Studio outage")
        time.sleep(min(15.0, self.args.duration * 0.1))
        self.ls.start(log_path=self.work / "label-studio.log")
        self.ls_up.set()
        self.log("Label Studio back")

    def partition(self) -> None:
        self.log("fault: backend cannot reach Label Studio (webhooks still arrive)")
        self.proxy.set_mode("down")
        self.tally.add("fault: partition")
        self.tally.phase = "the backend could not reach Label Studio"
        time.sleep(min(10.0, self.args.duration * 0.08))
        self.proxy.set_mode("up")
        self.tally.phase = ""
        self.log("partition healed")

    # -- run and verify ----------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        self.started = time.monotonic()
        threads = [threading.Thread(target=self.importer, name="importer"), threading.Thread(target=self.faults, name="faults")]
        threads += [threading.Thread(target=self.annotator, args=(self.args.seed * 100 + i,), name=f"annotator-{i}")
                    for i in range(self.args.annotators)]
        for thread in threads:
            thread.start()
        while time.monotonic() - self.started < self.args.duration and self.tally.events < self.args.max_events:
            time.sleep(0.5)
        self.stop_load.set()
        for thread in threads:
            thread.join()
        self.log(f"load stopped after {time.monotonic() - self.started:.0f} s; settling")
        settled_in = self.settle()
        return self.report(settled_in)

    def backend_status(self) -> dict:
        return requests.get(f"{self.backend.url}/projects/{self.project}/status", timeout=10).json()

    def settle(self) -> float:
        truth_tasks = len(list(self.client.tasks.list(project=self.project)))
        started = time.monotonic()
        while time.monotonic() - started < self.args.settle_timeout:
            try:
                status = self.backend_status()
                if status["worker"]["idle"] and status["tasks"]["embedded"] + status["tasks"]["failed"] >= truth_tasks:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(1)
        return float("nan")

    def report(self, settled_in: float) -> int:
        tasks = list(self.client.tasks.list(project=self.project, fields="all"))
        status = self.backend_status()
        version = status["model_version"]
        truth = {}  # annotation id -> target (None: skipped)
        for task in tasks:
            for a in task.annotations:
                a = a if isinstance(a, dict) else a.model_dump()
                choice = (a.get("result") or [{}])[0].get("value", {}).get("choices", [None])[0] if a.get("result") else None
                truth[int(a["id"])] = None if a.get("was_cancelled") else CHOICES.get(choice)
        with sqlite3.connect(f"file:{self.model_dir / 'ledger.sqlite'}?mode=ro", uri=True) as db:
            ledger = {row[0]: row[1] for row in db.execute(
                "SELECT annotation_id, target FROM annotations WHERE project = ?", (self.project,))}
            embedded = {row[0] for row in db.execute(
                "SELECT task_id FROM tasks WHERE project = ? AND state = 'embedded'", (self.project,))}
            seen = {row[0] for row in db.execute("SELECT task_id FROM tasks WHERE project = ? AND seen = 1", (self.project,))}
        chroma = self.chroma_ids()
        predicted = sum(1 for t in tasks if [self.version_of(p) for p in t.predictions] == [version])
        task_ids = {int(t.id) for t in tasks}
        annotated_tasks = {int(t.id) for t in tasks if t.annotations}
        rated = [a for a, target in truth.items() if target is not None]
        rows = [
            ("tasks imported (in Label Studio)", len(task_ids), len(task_ids & embedded)),
            ("annotations (in Label Studio, incl. skips)", len(truth), sum(1 for a in truth if a in ledger)),
            ("ratings with their current value", len(rated), sum(1 for a in rated if a in ledger and ledger[a] == truth[a])),
            ("annotations deleted in Label Studio, gone here", self.tally.counts["annotations deleted"],
             self.tally.counts["annotations deleted"] - len(set(ledger) - set(truth))),
            ("tasks with a current-version prediction", len(task_ids), predicted),
            ("annotated tasks marked seen", len(annotated_tasks), len(annotated_tasks & seen)),
            ("vectors in Chroma = embedded in ledger", len(embedded), len(embedded & chroma) - len(chroma - embedded)),
        ]
        lost = sum(sent - processed for _, sent, processed in rows)
        latency = "\n".join(filter(None, [
            self.percentiles("webhook handling in the backend (access log)", self.webhook_seconds()),
            self.percentiles("annotations.create in Label Studio (includes its webhook call)", self.tally.create_seconds),
        ]))
        lines = [
            f"Soak: {self.args.duration:.0f} s of load, {self.args.annotators} annotators, seed {self.args.seed}; "
            + (f"settled {settled_in:.0f} s after the load stopped" if settled_in == settled_in
               else f"did NOT settle within {self.args.settle_timeout:.0f} s"),
            "",
            "| events attempted by the load | count |", "|---|---:|",
            *[f"| {k} | {v} |" for k, v in sorted(self.tally.counts.items())],
            "",
            "| checked against Label Studio | sent | processed | lost |", "|---|---:|---:|---:|",
            *[f"| {name} | {sent} | {processed} | {sent - processed} |" for name, sent, processed in rows],
            "",
            f"Backend: model version {version}, head fitted on {status['head']['ratings'] if status['head'] else 0} rated tasks, "
            f"{status['tasks']['failed']} failed tasks, worker idle: {status['worker']['idle']}. **Lost: {lost}**",
            "",
            latency,
            "",
            "Timeline:", "", *[f"- {line}" for line in self.timeline],
        ]
        text = "\n".join(lines)
        print("\n" + text)
        if self.args.out:
            Path(self.args.out).write_text(self.args.header + "\n\n" + text + "\n" if self.args.header else text + "\n")
        return 1 if lost else 0

    def chroma_ids(self) -> set[int]:
        with sqlite3.connect(f"file:{self.model_dir / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
            rows = db.execute(
                """SELECT e.embedding_id FROM embeddings e JOIN segments s ON s.id = e.segment_id
                   JOIN collections c ON c.id = s.collection WHERE c.name = ?""", (f"project-{self.project}",)).fetchall()
        return {int(r[0]) for r in rows}

    def webhook_seconds(self) -> list[float]:
        """Durations of every POST /webhook the backend answered, from its access log (last field)."""
        found = re.findall(r'"POST /webhook HTTP/1\.1" \d+ .* ([\d.]+)$', (self.work / "backend.log").read_text(), re.M)
        return [float(seconds) for seconds in found]

    @staticmethod
    def percentiles(what: str, seconds: list[float]) -> str:
        if not seconds:
            return ""
        return (f"- {what}: p50 {np.percentile(seconds, 50):.3f} s, p95 {np.percentile(seconds, 95):.3f} s, "
                f"max {max(seconds):.3f} s over {len(seconds)}")

    @staticmethod
    def version_of(prediction) -> str:
        return prediction["model_version"] if isinstance(prediction, dict) else prediction.model_version

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started if self.started else 0.0
        line = f"{elapsed:6.1f} s  {message}"
        self.timeline.append(line)
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load (faults are placed within it)")
    parser.add_argument("--max-events", type=int, default=2000, help="stop the load after this many events")
    parser.add_argument("--annotators", type=int, default=4)
    parser.add_argument("--settle-timeout", type=float, default=180.0, help="seconds allowed to catch up after the load")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clip-model", default=None, help="CLIP folder; default: a tiny random one")
    parser.add_argument("--workdir", default=None, help="state and logs (default: a new temp dir)")
    parser.add_argument("--out", default=None, help="also write the summary (markdown) here")
    parser.add_argument("--header", default="", help="text put above the summary in --out")
    args = parser.parse_args()
    soak = Soak(args)
    try:
        code = soak.run()
    finally:
        soak.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
