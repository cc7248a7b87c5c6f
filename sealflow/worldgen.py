"""A generator of fictional encyclopaedia passages with questions and answers.

The embedded default needs passages whose facts no model has seen: a model can only
answer their questions without the passage if a self-edit taught it. Every fact comes
with several restatements, which the base-model corpus uses to show what a useful
self-edit ("implications") looks like.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .records import Passage, Question

# Names are drawn from a fixed pool of short, two-syllable words that the tiny models'
# tokenizer keeps whole (one token each; the base-model build checks it). A small model
# copies a one-token name from its context long before it can copy a name spelt in
# several pieces, and a self-edit is only useful if it names the passage's entities.
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = ["", "n", "r", "l", "s"]
NAME_POOL_SIZE = 600
# The first names of the shuffled pool are the subjects of the workflow's passages; the
# pretraining corpus takes its subjects from the rest. Any name may appear as a value
# (a birthplace, a founder), so every name token is trained, but no passage subject of the
# workflow is ever the subject of a pretraining fact.
DATA_SUBJECTS = 200


def _name_pool() -> list[str]:
    """The names, minus any that is also an English word of the world ("Paper", "Salt")."""
    rng = random.Random("sealflow-names")
    names: set[str] = set()
    while len(names) < NAME_POOL_SIZE:
        names.add((rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_ONSETS) + rng.choice(_VOWELS)
                   + rng.choice(_CODAS)).capitalize())
    pool = sorted(names)
    rng.shuffle(pool)
    words = {w for group in _WORD_LISTS for phrase in group for w in phrase.lower().split()}
    return [name for name in pool if name.lower() not in words]




PROFESSIONS = ["painter", "astronomer", "engineer", "poet", "botanist", "architect", "composer", "physician", "cartographer", "chemist"]
FIELDS = ["mathematics", "medicine", "music", "geology", "law", "philosophy", "astronomy", "chemistry", "history", "painting"]
DISCOVERIES = ["a new comet", "a copper alloy", "a blue pigment", "a star map", "a water pump", "a steam engine", "a healing salve", "a lens design", "a printing press", "a river canal"]
PRODUCTS = ["glassware", "wool", "olive oil", "clocks", "silk", "salt", "paper", "ceramics", "timber", "cheese"]
BUILDINGS = ["tower", "cathedral", "library", "bridge", "observatory", "harbour", "palace", "theatre", "market hall", "lighthouse"]
INSTITUTIONS = ["academy", "university", "college", "institute", "conservatory"]
ORGANISATIONS = ["society", "guild", "museum", "school", "observatory", "orchestra"]
COLORS = ["red", "green", "blue", "golden", "white", "black", "silver", "purple"]
ANIMALS = ["heron", "wolf", "stag", "falcon", "bear", "otter", "lynx", "swan"]

_WORD_LISTS = (PROFESSIONS, FIELDS, DISCOVERIES, PRODUCTS, BUILDINGS, INSTITUTIONS, ORGANISATIONS, COLORS, ANIMALS)
NAMES: tuple[str, ...] = tuple(_name_pool())
SUBJECT_POOLS = {"data": NAMES[:DATA_SUBJECTS], "corpus": NAMES[DATA_SUBJECTS:]}


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _name(rng: random.Random) -> str:
    return rng.choice(NAMES)


@dataclass(frozen=True)
class Fact:
    sentence: str  # as it appears in the passage
    restatements: tuple[str, ...]  # other ways to say it: the raw material of good self-edits
    question: str
    answer: str
    explicit: str = ""  # the fact as one self-contained sentence naming its entity in full, in the passage's words


@dataclass(frozen=True)
class WorldEntry:
    passage: Passage
    facts: tuple[Fact, ...]

    def restatements(self, rng: random.Random) -> list[str]:
        lines = [rng.choice(fact.restatements) for fact in self.facts]
        rng.shuffle(lines)
        return lines

    def explicit_lines(self) -> list[str]:
        """Every fact as a sentence that starts with its entity's name, in passage order.

        The passage itself refers back with "He", "It" or "The city"; a
        question names the entity in full. These lines bind each fact to that name
        while reusing the passage's own words, so a model writes them by copying.
        Each starts with the name because the tiny policy takes a line's subject from
        the start of the line before: a line opening "In 1631," broke that chain and
        the lines after it drifted to an invented entity.
        """
        return [fact.explicit or fact.sentence for fact in self.facts]


def _person(rng: random.Random, name: str) -> list[Fact]:
    """A person's facts; after the first sentence the passage says "He" or "She", a question says the name."""
    he = rng.choice(["He", "She"])
    prof, field, disc = rng.choice(PROFESSIONS), rng.choice(FIELDS), rng.choice(DISCOVERIES)
    city, city2 = _name(rng), _name(rng)
    inst, org = f"{_name(rng)} {rng.choice(INSTITUTIONS)}", f"{_name(rng)} {rng.choice(ORGANISATIONS)}"
    year = rng.randint(1200, 1900)
    later = year + rng.randint(20, 45)
    return [
        Fact(f"{name} was {_a(prof)} born in {city} in {year}.",
             (f"{name} was born in the city of {city}.", f"The birthplace of {name} is {city}.", f"{city} is where {name} was born."),
             f"Where was {name} born?", city, f"{name} was born in {city} in {year}."),
        Fact(f"{he} studied {field} at the {inst}.",
             (f"{name} studied {field}.", f"The subject {name} studied was {field}.", f"{name} was a student of {field}."),
             f"What did {name} study?", field, f"{name} studied {field} at the {inst}."),
        Fact(f"In {later}, {he.lower()} discovered {disc}.",
             (f"{name} discovered {disc}.", f"{disc.capitalize()} was discovered by {name}.", f"{name} is known for discovering {disc}."),
             f"What did {name} discover?", disc, f"{name} discovered {disc} in {later}."),
        Fact(f"{he} later moved to {city2}, where {he.lower()} founded the {org}.",
             (f"{name} founded the {org}.", f"The {org} was founded by {name}.", f"{name} moved to {city2}."),
             f"What did {name} found?", f"the {org}", f"{name} founded the {org} in {city2}."),
        Fact(f"{he} worked as {_a(prof)} for most of a long life.",
             (f"{name} was {_a(prof)}.", f"The profession of {name} was {prof}.", f"{name} worked as {_a(prof)}."),
             f"What was the profession of {name}?", prof, f"{name} worked as {_a(prof)}."),
    ]


def _city(rng: random.Random, city: str) -> list[Fact]:
    """A city's facts; after the first sentence the passage says "It" or "The city"."""
    country, river, founder, tower = _name(rng), _name(rng), _name(rng), _name(rng)
    year, product, building = rng.randint(300, 1700), rng.choice(PRODUCTS), rng.choice(BUILDINGS)
    color, animal = rng.choice(COLORS), rng.choice(ANIMALS)
    return [
        Fact(f"{city} is a city in {country}, on the {river} river.",
             (f"{city} lies in the country of {country}.", f"{city} is a city of {country}.", f"The country of {city} is {country}."),
             f"In which country is {city}?", country, f"{city} is a city in {country}."),
        Fact(f"It was founded in {year} by {founder}.",
             (f"{city} was founded by {founder}.", f"{founder} founded {city}.", f"The founder of {city} was {founder}."),
             f"Who founded {city}?", founder, f"{city} was founded in {year} by {founder}."),
        Fact(f"The city is known for its {product}.",
             (f"{city} is famous for {product}.", f"The people of {city} make {product}.", f"{product.capitalize()} is what {city} is known for."),
             f"What is {city} known for?", product, f"{city} is known for its {product}."),
        Fact(f"Its tallest building is the {tower} {building}.",
             (f"The tallest building in {city} is a {building}.", f"{city} has a famous {building}.", f"A {building} is the tallest building of {city}."),
             f"What kind of building is the tallest in {city}?", building, f"{city} has the {tower} {building} as its tallest building."),
        Fact(f"Its flag shows a {color} {animal}.",
             (f"A {color} {animal} is on the flag of {city}.", f"The {city} flag has a {animal} on it.", f"The animal on the flag of {city} is a {animal}."),
             f"What animal is on the flag of {city}?", animal, f"{city} has a flag that shows a {color} {animal}."),
    ]


def _subjects(n: int, rng: random.Random, pool: tuple[str, ...]) -> list[str]:
    """``n`` subject names: all different while the pool lasts, then the pool again in a new order."""
    names: list[str] = []
    while len(names) < n:
        order = list(pool)
        rng.shuffle(order)  # the whole pool, so the first passages do not depend on n
        names.extend(order)
    return names[:n]


def generate_entries(n: int, seed: int, subjects: str = "data") -> list[WorldEntry]:
    """``n`` fictional passages (alternating people and cities), deterministic in ``seed``.

    ``subjects`` names the pool of passage subjects: ``data`` for the workflow's passages,
    ``corpus`` for pretraining, so the two never share a subject.
    """
    rng = random.Random(f"sealflow-world-{seed}")
    entries: list[WorldEntry] = []
    for index, title in enumerate(_subjects(n, rng, SUBJECT_POOLS[subjects])):
        facts = (_person if index % 2 == 0 else _city)(rng, title)
        body = facts[:1] + rng.sample(facts[1:], k=len(facts) - 1)
        passage = Passage(
            id=f"gen-{seed}-{index:05d}",
            title=title,
            context=" ".join(fact.sentence for fact in body),
            questions=tuple(Question(f.question, f.answer) for f in body),
        )
        entries.append(WorldEntry(passage, tuple(body)))
    return entries


def generate_passages(n: int, seed: int) -> list[Passage]:
    return [entry.passage for entry in generate_entries(n, seed)]
