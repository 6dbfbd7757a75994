"""Many minds into one: debate distillation (AgentArk), phase-aware LoRA experts (PA-MoE), ensembles."""
