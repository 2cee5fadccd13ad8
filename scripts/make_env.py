"""Write the .env docker compose reads, with freshly generated secrets (standard library only).

    python3 scripts/make_env.py          # writes .env (mode 0600); keeps values already there

Generates Label Studio's admin password and API token and the backend's basic-auth
password: the backend listens on all interfaces inside its container, so it requires
credentials (secure by default), and `scripts/connect_project.py` registers them in the
project's ML connection.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generated() -> dict[str, str]:
    return {
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(12),
        "LABEL_STUDIO_API_KEY": secrets.token_hex(20),  # Label Studio's legacy tokens are 40 hex characters
        "BASIC_AUTH_USER": "ml-backend",
        "BASIC_AUTH_PASS": secrets.token_urlsafe(18),
        "IMAGE_EMBEDDING_MODEL": "openai/clip-vit-base-patch32",
        "TEXT_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    }


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".env"
    kept = {name: value for name, value in read_env(path).items() if value}
    values = {**generated(), **kept}
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)
    made = sorted(set(values) - set(kept))
    print(f"{path}: generated {', '.join(made) or 'nothing'}; kept {', '.join(sorted(kept)) or 'nothing'}")


if __name__ == "__main__":
    main()
