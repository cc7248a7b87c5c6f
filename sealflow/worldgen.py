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

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk"]

PROFESSIONS = ["painter", "astronomer", "engineer", "poet", "botanist", "architect", "composer", "physician", "cartographer", "chemist"]
FIELDS = ["mathematics", "medicine", "music", "geology", "law", "philosophy", "astronomy", "chemistry", "history", "painting"]
DISCOVERIES = ["a new comet", "a copper alloy", "a blue pigment", "a star map", "a water pump", "a steam engine", "a healing salve", "a lens design", "a printing press", "a river canal"]
PRODUCTS = ["glassware", "wool", "olive oil", "clocks", "silk", "salt", "paper", "ceramics", "timber", "cheese"]
BUILDINGS = ["tower", "cathedral", "library", "bridge", "observatory", "harbour", "palace", "theatre", "market hall", "lighthouse"]
INSTITUTIONS = ["academy", "university", "college", "institute", "conservatory"]
ORGANISATIONS = ["society", "guild", "museum", "school", "observatory", "orchestra"]
COLORS = ["red", "green", "blue", "golden", "white", "black", "silver", "purple"]
ANIMALS = ["heron", "wolf", "stag", "falcon", "bear", "otter", "lynx", "swan"]


def _name(rng: random.Random, syllables: int | None = None) -> str:
    count = syllables or rng.choice([2, 2, 3])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(count)) + rng.choice(_CODAS)
    return word.capitalize()


@dataclass(frozen=True)
class Fact:
    sentence: str  # as it appears in the passage
    restatements: tuple[str, ...]  # other ways to say it: the raw material of good self-edits
    question: str
    answer: str


@dataclass(frozen=True)
class WorldEntry:
    passage: Passage
    facts: tuple[Fact, ...]

    def restatements(self, rng: random.Random) -> list[str]:
        lines = [rng.choice(fact.restatements) for fact in self.facts]
        rng.shuffle(lines)
        return lines


def _person(rng: random.Random) -> tuple[str, list[Fact]]:
    name = f"{_name(rng)} {_name(rng)}"
    first = name.split()[0]
    prof, field, disc = rng.choice(PROFESSIONS), rng.choice(FIELDS), rng.choice(DISCOVERIES)
    city, city2 = _name(rng), _name(rng)
    inst, org = f"{_name(rng)} {rng.choice(INSTITUTIONS)}", f"{_name(rng)} {rng.choice(ORGANISATIONS)}"
    year, later = rng.randint(1200, 1900), 0
    later = year + rng.randint(20, 45)
    facts = [
        Fact(f"{name} was a {prof} born in {city} in {year}.",
             (f"{name} was born in the city of {city}.", f"The birthplace of {name} is {city}.", f"{city} is where {first} was born."),
             f"Where was {name} born?", city),
        Fact(f"{first} studied {field} at the {inst}.",
             (f"{name} studied {field}.", f"The subject {name} studied was {field}.", f"{first} was a student of {field}."),
             f"What did {name} study?", field),
        Fact(f"In {later}, {first} discovered {disc}.",
             (f"{name} discovered {disc}.", f"{disc.capitalize()} was discovered by {name}.", f"{first} is known for discovering {disc}."),
             f"What did {name} discover?", disc),
        Fact(f"{first} later moved to {city2}, where {first} founded the {org}.",
             (f"{name} founded the {org}.", f"The {org} was founded by {name}.", f"{name} moved to {city2}."),
             f"What did {name} found?", f"the {org}"),
        Fact(f"{name} worked as a {prof} for most of a long life.",
             (f"{name} was a {prof}.", f"The profession of {name} was {prof}.", f"{first} worked as a {prof}."),
             f"What was the profession of {name}?", prof),
    ]
    return name, facts


def _city(rng: random.Random) -> tuple[str, list[Fact]]:
    city, country, river = _name(rng), _name(rng), _name(rng)
    founder = f"{_name(rng)} {_name(rng)}"
    year, product, building = rng.randint(300, 1700), rng.choice(PRODUCTS), rng.choice(BUILDINGS)
    color, animal = rng.choice(COLORS), rng.choice(ANIMALS)
    facts = [
        Fact(f"{city} is a city in {country}, on the {river} river.",
             (f"{city} lies in the country of {country}.", f"{city} is a city of {country}.", f"The country of {city} is {country}."),
             f"In which country is {city}?", country),
        Fact(f"It was founded in {year} by {founder}.",
             (f"{city} was founded by {founder}.", f"{founder} founded {city}.", f"The founder of {city} was {founder}."),
             f"Who founded {city}?", founder),
        Fact(f"The city is known for its {product}.",
             (f"{city} is famous for {product}.", f"The people of {city} make {product}.", f"{product.capitalize()} is what {city} is known for."),
             f"What is {city} known for?", product),
        Fact(f"Its tallest building is the {_name(rng)} {building}.",
             (f"The tallest building in {city} is a {building}.", f"{city} has a famous {building}.", f"A {building} is the tallest building of {city}."),
             f"What kind of building is the tallest in {city}?", building),
        Fact(f"The flag of {city} shows a {color} {animal}.",
             (f"A {color} {animal} is on the flag of {city}.", f"The {city} flag has a {animal} on it.", f"The animal on the flag of {city} is a {animal}."),
             f"What animal is on the flag of {city}?", animal),
    ]
    return city, facts


def generate_entries(n: int, seed: int) -> list[WorldEntry]:
    """``n`` fictional passages (alternating people and cities), deterministic in ``seed``."""
    rng = random.Random(f"sealflow-world-{seed}")
    entries: list[WorldEntry] = []
    for index in range(n):
        title, facts = (_person if index % 2 == 0 else _city)(rng)
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
