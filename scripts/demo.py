"""Label Studio + this backend on loopback, with demo projects, until Ctrl-C.

    bash scripts/demo.sh              # real CLIP (downloads openai/clip-vit-base-patch32 once), shape images
    bash scripts/demo.sh --offline    # no internet: real packaged models and data (scripts/demo_data.py):
                                      # MiniLM on SpamAssassin emails, EfficientNet-Lite0 on Fashion-MNIST
    bash scripts/demo.sh --ls-port 8081 --backend-port 9091   # other ports

State lives in .demo/ (Label Studio's SQLite DB, MODEL_DIR, images, logs); a rerun reuses it
and keeps the project's parameters as an admin left them (--prompt / --batch-size change them).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ml_backend.adapters.ls_admin import (
    admin_client, connect_backend, create_project, find_project, import_local_folder, upload_images,
)
from ml_backend.core.embed import DEFAULT_MODEL, check_model_available
from ml_backend.core.errors import ConfigError, ModelUnavailableError
from ml_backend.core.params import ProjectParams

from . import demo_data
from .servers import ADMIN_EMAIL, BackendServer, LabelStudioServer, stored_secret

ROOT = Path(__file__).resolve().parents[1]
DEMO_TITLE = "CLIP vector queue demo"
# The demo project's parameters when it is created; a rerun keeps whatever they are by then.
DEMO_PARAMS = {"prompt": "a red circle", "batch_size": 8}
COLORS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 70, 210), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
BACKEND_USER = "ml-backend"


def make_shape_images(folder: Path, per_kind: int = 4, size: int = 96) -> list[Path]:
    """Write colored shapes on varied backgrounds (4 colors x 3 shapes x per_kind) as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for color_name, color in COLORS.items():
        for shape in SHAPES:
            for variant in range(per_kind):
                image = Image.new("RGB", (size, size), (250 - 30 * variant, 250 - 20 * variant, 245))
                draw = ImageDraw.Draw(image)
                margin = 10 + 6 * variant
                box = (margin, margin, size - margin, size - margin)
                if shape == "circle":
                    draw.ellipse(box, fill=color)
                elif shape == "square":
                    draw.rectangle(box, fill=color)
                else:
                    draw.polygon([(size // 2, margin), (size - margin, size - margin), (margin, size - margin)], fill=color)
                path = folder / f"{color_name}-{shape}-{variant}.png"
                image.save(path)
                paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true",
                        help="no hub: a text and an image project on real models and data installed from packages")
    parser.add_argument("--ls-port", type=int, default=8080, help="Label Studio's port on 127.0.0.1 (default 8080)")
    parser.add_argument("--backend-port", type=int, default=9090, help="the backend's port on 127.0.0.1 (default 9090)")
    parser.add_argument("--prompt", help=f"set the project's prompt (new project: {DEMO_PARAMS['prompt']!r})")
    parser.add_argument("--batch-size", type=int, help=f"set k, tasks per batch (new project: {DEMO_PARAMS['batch_size']})")
    args = parser.parse_args()
    given = {key: value for key, value in (("prompt", args.prompt), ("batch_size", args.batch_size)) if value is not None}
    signal.signal(signal.SIGTERM, _interrupt)  # stop the servers on kill/timeout too, not only on Ctrl-C

    state = ROOT / ".demo"
    state.mkdir(exist_ok=True)
    model = os.environ.get("IMAGE_EMBEDDING_MODEL", os.environ.get("CLIP_MODEL", DEFAULT_MODEL))
    if args.offline:
        try:
            model_env = demo_data.offline_environment()
        except RuntimeError as exc:
            print(f"\nERROR: {exc}\n", file=sys.stderr)
            sys.exit(2)
        print("OFFLINE DEMO: real models and data installed from packages (MiniLM + SpamAssassin, "
              "EfficientNet-Lite0 + Fashion-MNIST).", flush=True)
    else:
        model_env = {"IMAGE_EMBEDDING_MODEL": model}
        if Path(model).is_dir():
            print(f"loading CLIP from {model} ...", flush=True)
        else:
            print(f"loading CLIP {model} (the first run downloads about 600 MB from the HuggingFace hub) ...", flush=True)
        try:
            check_model_available(model)
        except ModelUnavailableError as exc:
            print(f"\nERROR: {exc}\n\nNo internet? Run the offline demo instead: real pretrained models and real data,\n"
                  "all installed from packages (MiniLM on SpamAssassin emails, EfficientNet-Lite0 on Fashion-MNIST):\n"
                  "    bash scripts/demo.sh --offline\n"
                  "or point IMAGE_EMBEDDING_MODEL at a local folder with a saved CLIP model and processor:\n"
                  "    IMAGE_EMBEDDING_MODEL=/path/to/clip bash scripts/demo.sh\n", file=sys.stderr)
            sys.exit(2)

    print("starting Label Studio (first start runs migrations, about a minute) ...", flush=True)
    ls = LabelStudioServer(state / "label-studio", args.ls_port, state / "files").start(log_path=state / "label-studio.log")
    backend_url = f"http://127.0.0.1:{args.backend_port}"
    print("starting the backend ...", flush=True)
    # Secure by default, even on loopback: the backend gets credentials, and the project's ML connection too.
    basic_auth = (BACKEND_USER, stored_secret(state / "backend_password", lambda: secrets.token_urlsafe(18)))
    backend = BackendServer(args.backend_port, log_path=state / "backend.log", env={
        "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_token, "MODEL_DIR": str(state / "model_dir"),
        "BACKEND_URL": backend_url, **model_env,
        "BASIC_AUTH_USER": basic_auth[0], "BASIC_AUTH_PASS": basic_auth[1],
    })
    try:
        backend.start(timeout_s=900)
        if args.offline:
            projects = [(project, demo.title, demo.expect, params)
                        for project, demo, params in demo_data.bootstrap(ls, backend_url, given, basic_auth)]
        else:
            project, params = bootstrap(ls, backend_url, given, basic_auth)
            projects = [(project, DEMO_TITLE, "72 shape images; the prompt starts W", params)]
        listing = "\n".join(f"  Project {project:<6} {ls.url}/projects/{project}/data   {title}\n"
                            f"                 {expect}\n"
                            f"                 parameters: {json.dumps(params)}\n"
                            f"                 status: {backend_url}/projects/{project}/status"
                            for project, title, expect, params in projects)
        print(f"""
Ready.
  Label Studio   {ls.url}   (user {ADMIN_EMAIL}, password in {ls.data_dir}/admin_password)
  API token      in {ls.data_dir}/api_token (also under Account & Settings in Label Studio), for the admin scripts:
                 export LABEL_STUDIO_URL={ls.url} LABEL_STUDIO_API_KEY=$(cat {ls.data_dir}/api_token) BACKEND_URL={backend_url}
{listing}
  Backend        {backend_url}/health
                 (user {BACKEND_USER}, password in {state}/backend_password; registered in the projects' ML connections)
  Annotators: open a project's "Next batch (ML)" tab, then the arrow beside "Label All Tasks" -> "Label Tasks As Displayed".
  Logs: {state}/label-studio.log, {state}/backend.log.   Ctrl-C stops both.
""", flush=True)
        while ls.process.poll() is None and backend.process.poll() is None:
            time.sleep(1)
        print("a server stopped; see the logs", file=sys.stderr)
    except ConfigError as exc:
        print(f"\nERROR: {exc}\n", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    finally:
        backend.stop()
        ls.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def bootstrap(ls: LabelStudioServer, backend_url: str, given: dict[str, Any],
              basic_auth: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Create (or reuse) the demo project, connect the backend (with its credentials), import images once.

    A new project gets DEMO_PARAMS; an existing one keeps its parameters, with `given` merged in.
    Returns the project id and its parameters.
    """
    client = admin_client(ls.url, ls.api_token)
    project = find_project(client, DEMO_TITLE)
    fresh = project is None
    if fresh:
        project = create_project(client, DEMO_TITLE, (ROOT / "label_config.xml").read_text())
    connected = connect_backend(client, project, backend_url, "CLIP vector queue",
                                {**DEMO_PARAMS, **given} if fresh else given, validate=ProjectParams.parse,
                                basic_auth=basic_auth)
    if fresh:
        uploads = make_shape_images(ls.data_dir.parent / "demo-uploads")
        local = make_shape_images(ls.local_files_root / "demo", per_kind=2)
        upload_images(ls.url, ls.api_token, project, uploads)
        import_local_folder(client, project, ls.local_files_root / "demo")
        print(f"imported {len(uploads)} uploaded and {len(local)} local-files images", flush=True)
    return project, connected.params


if __name__ == "__main__":
    main()
