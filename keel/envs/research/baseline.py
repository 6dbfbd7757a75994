"""Retrieval-then-answer, the no-learning baseline of the research world (the "RAG" row of Search-R1's
tables): retrieve once with the question itself, and answer with the entity the top passage names that
has the type the question asks for (read from the question's outermost phrase) and is not named in the
question. One search, no reasoning across hops: it can answer a 1-hop question whose fact the retriever
ranks first, and a multi-hop question only by luck.
"""

from __future__ import annotations

import re

from keel.envs.research.data import ResearchData
from keel.envs.research.questions import NOUN_PHRASE, Question
from keel.envs.research.search import CorpusIndex, Mode
from keel.envs.research.world import RELATIONS

_LEAD = re.compile(r"^(?:Who|What) is (.*)\?$")


def asked_type(text: str) -> str | None:
    """The type of entity a question asks for, from its outermost noun phrase."""
    m = _LEAD.match(text)
    if m is None:
        return None
    rest = m.group(1)
    for rel, np_ in NOUN_PHRASE.items():
        head, _, tail = np_.partition("{}")
        if rest.startswith(head) and rest.endswith(tail):
            return RELATIONS[rel][1]
    return None


def retrieve_then_answer(data: ResearchData, index: CorpusIndex, question: Question, mode: Mode) -> str:
    ents = data.world.entities
    passages = index.search(question.text, 1, mode)
    if not passages:
        return ""
    want = asked_type(question.text)
    named = [i for i in data.docs[passages[0].doc].mentions if ents[i].name not in question.text]
    typed = [i for i in named if ents[i].type == want]
    pick = typed or named
    return ents[pick[0]].name if pick else ""
