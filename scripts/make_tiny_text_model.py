"""Build a tiny, randomly initialised sentence-embedding model (BERT + mean pooling) in a local folder.

The same layout as a sentence-transformers model folder (config, safetensors weights,
tokenizer, `modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`), so
the backend's text embedder loads it through the same code path as all-MiniLM-L6-v2.
Its scores are meaningless: for tests only.

    python -m scripts.make_tiny_text_model models/tiny-text
"""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from ml_backend.core.embedding import TINY_MODEL_MARKERS

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_tokenizer() -> BertTokenizerFast:
    """A character-level WordPiece tokenizer: every lower-case letter, digit and punctuation mark is a token."""
    characters = string.ascii_lowercase + string.digits
    vocab = SPECIAL_TOKENS + list(characters + string.punctuation) + ["##" + c for c in characters]
    return BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})


def build_tiny_text_model(out_dir: str | Path, hidden_size: int = 24, max_seq_length: int = 48, seed: int = 0) -> Path:
    """Write a random `hidden_size`-d sentence embedder to `out_dir` and return it (deterministic per seed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=1))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden_size, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False,
         "pooling_mode_max_tokens": False}, indent=1))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    (out / TINY_MODEL_MARKERS[0]).write_text(json.dumps({"warning": "random weights: scores are meaningless"}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the model into")
    args = parser.parse_args()
    print(build_tiny_text_model(args.out_dir))


if __name__ == "__main__":
    main()
