"""Optional LoRA adapters (Hu et al. 2021, arXiv 2106.09685) through `peft`: train a few low-rank matrices.

With LoRA the frozen base model doubles as the KL reference (adapters switched off), so no copy is kept.
"""

from __future__ import annotations

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_lora(model, r: int = 16, alpha: int | None = None, dropout: float = 0.0):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=LLAMA_TARGETS,
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
