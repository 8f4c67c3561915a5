"""LEMBNeedleRetrieval, re-created offline from the Paul Graham essays.

The published needles and questions are not available offline; this module makes its own, in the
spirit of the LongEmbed paper (short facts about paintings, novels, geography, history and
science inserted into a long haystack, asked about with a natural question):

* Haystack: the 50 essays of ``<data dir>/longtext/paul_graham_essays/*.txt`` in file-name order,
  whitespace collapsed to single spaces, split into sentences after ``.``, ``!`` or ``?``.  For
  context length L every document takes the haystack from its beginning (as in the classic
  needle-in-a-haystack test) up to L tokens minus its needle, the last sentence cut at a word.
* Needles: 100 per length, each from one of ten templates (below) filled with invented proper
  names (syllables drawn from a seeded RNG, unique within a length) so that no model can answer
  from world knowledge and no two needles share a subject.  A needle is inserted at a uniformly
  random sentence boundary of its document; each document holds exactly one needle.
* Queries: the template's question for 50 randomly chosen documents; the other 50 documents
  are distractors.  Documents are stored in a shuffled order (see passkey.py for why).
* Lengths are MiniLM word pieces without special tokens (a document has L - 3 ... L tokens).

Everything comes from ``random.Random(f"{seed}/needle/{L}")``: the same seed and the same
essays give the same bytes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path

from lam_mteb_plugins.longembed._common import (
    LENGTHS,
    assemble_split,
    count_tokens,
    split_stats,
)

DEFAULT_SEED = 2404_12096
ESSAYS_DIR = Path("longtext") / "paul_graham_essays"
N_DOCS = 100
N_QUERIES = 50

# (fact, question); {X} = the unique invented subject, {Y} an invented name, {N} a number.
TEMPLATES = (
    (
        "The painting called {X} was painted by {Y} in the year {N}.",
        "Who painted the painting called {X}?",
    ),
    ("The novel {X} was written by an author named {Y}.", "Who wrote the novel {X}?"),
    (
        "The capital city of the island nation of {X} is {Y}.",
        "What is the capital city of the island nation of {X}?",
    ),
    (
        "The chemical formula of the mineral {X}ite is {F}.",
        "What is the chemical formula of the mineral {X}ite?",
    ),
    (
        "The Treaty of {X} was signed in the year {N}.",
        "In which year was the Treaty of {X} signed?",
    ),
    (
        "The best thing to do in the town of {X} is to {A}.",
        "What is the best thing to do in the town of {X}?",
    ),
    (
        "The tallest mountain in the province of {X} is Mount {Y}.",
        "What is the tallest mountain in the province of {X}?",
    ),
    (
        "The element {X}ium was first isolated by the chemist {Y}.",
        "Who first isolated the element {X}ium?",
    ),
    (
        "The secret ingredient of the {X} soup is {I}.",
        "What is the secret ingredient of the {X} soup?",
    ),
    ("The river {X} flows into the {Y} Sea.", "Into which sea does the river {X} flow?"),
)
ACTIVITIES = (
    "eat a sandwich in the old harbour",
    "walk along the red cliffs at dawn",
    "swim in the warm lake",
    "visit the glass museum",
    "ride the little blue train",
    "climb the clock tower",
    "watch the kite festival",
    "buy bread at the night market",
)
INGREDIENTS = (
    "smoked paprika",
    "roasted chestnuts",
    "green cardamom",
    "dried seaweed",
    "pickled lemon",
    "black garlic",
    "toasted sesame",
    "wild fennel",
)
ELEMENTS = ("C", "H", "O", "N", "S", "P", "Fe", "Cu", "Zn", "Mg", "Al", "Si", "Na", "K", "Ca")

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gr",
    "kr",
    "tr",
    "st",
    "th",
    "sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei")
_CODAS = ("", "", "n", "r", "l", "s", "m", "nd", "rk")


def _invented_name(rng: random.Random) -> str:
    syllables = rng.randint(2, 3)
    word = "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    )
    return word.capitalize()


def _formula(rng: random.Random) -> str:
    parts = rng.sample(ELEMENTS, rng.randint(2, 3))
    return "".join(p + (str(rng.randint(2, 6)) if rng.random() < 0.6 else "") for p in parts)


def make_needles(rng: random.Random, n: int = N_DOCS) -> list[tuple[str, str]]:
    """``n`` (fact, question) pairs with distinct invented subjects, templates in rotation."""
    used: set[str] = set()

    def fresh() -> str:
        while True:
            name = _invented_name(rng)
            if name not in used:
                used.add(name)
                return name

    out = []
    for i in range(n):
        fact, question = TEMPLATES[i % len(TEMPLATES)]
        x = fresh()
        values = {
            "X": x,
            "Y": fresh(),
            "N": str(rng.randint(1100, 1990)),
            "F": _formula(rng),
            "A": rng.choice(ACTIVITIES),
            "I": rng.choice(INGREDIENTS),
        }
        out.append((fact.format(**values), question.format(**values)))
    rng.shuffle(out)
    return out


def load_haystack(essays_dir: Path) -> list[str]:
    """The essays as one list of sentences (file-name order, whitespace collapsed)."""
    files = sorted(p for p in Path(essays_dir).glob("*.txt") if p.name != "LICENSE.txt")
    text = " ".join(" ".join(p.read_text(encoding="utf-8").split()) for p in files)
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def _haystack_prefix(sentences: list[str], counts: list[int], budget: int) -> tuple[list[str], int]:
    """Whole sentences from the start within ``budget`` tokens, then words of the next one."""
    out: list[str] = []
    used = 0
    for sent, n in zip(sentences, counts, strict=True):
        if used + n <= budget:
            out.append(sent)
            used += n
            continue
        words = sent.split(" ")
        wcounts = count_tokens(words)
        part: list[str] = []
        for w, c in zip(words, wcounts, strict=True):
            if used + c > budget:
                break
            part.append(w)
            used += c
        if part:
            out.append(" ".join(part))
        break
    return out, used


def generate_length(
    length: int, sentences: list[str], counts: list[int], seed: int = DEFAULT_SEED
) -> dict:
    """One split (same row layout as passkey.generate_length, plus ``needle``)."""
    if sum(counts) < length:
        from lam_mteb import DataNotFound

        raise DataNotFound(
            f"the needle haystack has {sum(counts)} tokens, fewer than {length}; "
            "the full Paul Graham essay set has ~142k"
        )
    rng = random.Random(f"{seed}/needle/{length}")
    needles = make_needles(rng)
    needle_counts = count_tokens([f for f, _ in needles])
    docs = []
    for (fact, question), n_fact in zip(needles, needle_counts, strict=True):
        hay, used = _haystack_prefix(sentences, counts, length - n_fact)
        pos = rng.randint(0, len(hay) - 1 if len(hay) > 1 else 0)  # never after a cut sentence
        tokens_before = sum(counts[:pos])  # hay[:pos] are whole haystack sentences
        hay = hay[:pos] + [fact] + hay[pos:]
        docs.append(
            {
                "text": " ".join(hay),
                "n_tokens": used + n_fact,
                "needle": fact,
                "question": question,
                "needle_position": tokens_before,
            }
        )
    return assemble_split("needle", length, docs, N_QUERIES, rng, lambda doc: doc["question"])


def generate(
    essays_dir: Path, lengths: Iterable[int] = LENGTHS, seed: int = DEFAULT_SEED
) -> dict[int, dict]:
    sentences = load_haystack(essays_dir)
    if not sentences:
        from lam_mteb import DataNotFound

        raise DataNotFound(f"no essays (*.txt) in {essays_dir}")
    counts = count_tokens(sentences)
    return {length: generate_length(length, sentences, counts, seed) for length in lengths}


def summary(data: dict[int, dict], seed: int = DEFAULT_SEED) -> dict:
    return {
        "generator": "lam_mteb_plugins.longembed.needle",
        "seed": seed,
        "haystack": str(ESSAYS_DIR / "*.txt") + " (file-name order)",
        "token_counter": "all-MiniLM-L6-v2 WordPiece, no special tokens",
        "splits": split_stats(data),
    }
