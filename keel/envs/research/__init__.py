"""Research agents' world (Search-R1, arXiv 2503.09516; Search-R1++, arXiv 2602.19526): a generated
knowledge world (`world`), its corpus (`documents`), multi-hop questions split by entity (`questions`),
a search tool over `keel.memory` retrieval (`search`), and the agentic env (`agentic_env`,
Gymnasium id keel/ResearchAgent-v0). `baseline` is retrieval-then-answer with no learning."""
