"""Build a tiny, randomly initialised CLIP model in a local folder.

The real default (`openai/clip-vit-base-patch32`) cannot be downloaded on an
offline machine. This folder has the same format (config, safetensors weights,
tokenizer, image processor), so the backend loads it through the same code path.
Its scores are meaningless: use it for smoke runs and tests only.

    python -m scripts.make_tiny_clip models/tiny-clip
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP byte-level BPE uses for raw bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tiny_tokenizer() -> CLIPTokenizerFast:
    """A character-level CLIP tokenizer: every byte is a token, no merges."""
    alphabet = _byte_level_alphabet()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": len(alphabet) + i for i, ch in enumerate(alphabet)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizerFast(vocab=vocab, merges=[])


def build_tiny_clip(out_dir: str | Path, projection_dim: int = 32, image_size: int = 32, seed: int = 0) -> Path:
    """Write a random CLIP with `projection_dim`-d embeddings to `out_dir` and return it.

    Deterministic for a given seed, so tests can compare runs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": image_size, "patch_size": 8,
        },
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(out)
    (out / "TINY_RANDOM_CLIP.json").write_text(json.dumps({"warning": "random weights: scores are meaningless"}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the model into")
    parser.add_argument("--dim", type=int, default=32, help="embedding size")
    args = parser.parse_args()
    print(build_tiny_clip(args.out_dir, projection_dim=args.dim))


if __name__ == "__main__":
    main()
