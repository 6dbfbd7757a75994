"""Ensemble members as LoRA variants of one base model (bagging, Breiman 1996): each adapter is fine-tuned
on its own bootstrap resample of verified replies, from its own random initialisation, so the members
share the base's weights (one copy in memory) but disagree where the data let them.
"""

from __future__ import annotations

import random

import torch

from keel.distill.ensemble import Member
from keel.distill.rsft import Example, SFTConfig, sft
from keel.errors import KeelError
from keel.llm.lora import LLAMA_TARGETS


def lora_members(model, tokenizer, examples: list[Example], n: int, cfg: SFTConfig, r: int = 8,
                 seed: int = 0, bag: int | None = None) -> tuple[object, list[Member], list[list[dict]]]:
    """(the peft model, its n members, each member's SFT log); adapters are named m0 .. m{n-1}. Each
    member's bootstrap sample has `bag` examples (default: as many as there are)."""
    from peft import LoraConfig, get_peft_model

    if n < 1 or not examples:
        raise KeelError(f"lora_members needs n >= 1 and some examples (got n={n}, {len(examples)} examples)")
    lcfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LLAMA_TARGETS, task_type="CAUSAL_LM")
    torch.manual_seed(seed * 7919)
    peft_model = get_peft_model(model, lcfg, adapter_name="m0")
    members, logs = [], []
    for i in range(n):
        name = f"m{i}"
        if i > 0:
            torch.manual_seed(seed * 7919 + i)  # its own LoRA initialisation
            peft_model.add_adapter(name, lcfg)
        peft_model.set_adapter(name)  # only this adapter is trainable now
        rng = random.Random(f"bag|{seed}|{i}")
        sample = [rng.choice(examples) for _ in range(bag or len(examples))]
        logs.append(sft(peft_model, tokenizer, sample, cfg, seed=seed * 1000 + i))
        members.append(Member(peft_model, name))
    return peft_model, members, logs
