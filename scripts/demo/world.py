"""The demo's task world: the Vessa Isles, a made-up archipelago.

Everything here is derived from one seed, so the world, its corpora and its
test set come out byte-identical on every machine (only the standard
library's random.Random and sorted iteration are used). Nothing in the world
needs outside knowledge: islands, towns, creatures and people have invented
names, and every attribute is drawn at random from a small closed list.

Facts are (kind, subject) -> value. Each kind has a sub-topic name (what the
Self-Instruct prompts list and ask pairs about) and question templates; the
same templates parse a generated question back into its fact, which is how
the teacher's Self-Instruct output is checked against the world
(check_pair).
"""

import random
import re

SEED = 20240611

# Sizes: entities and the closed value lists. 16 islands x 3 towns; 48
# creatures; 32 people -> 144 entities, 368 facts.
N_ISLANDS = 16
TOWNS_PER_ISLAND = 3
N_CREATURES = 48
N_PEOPLE = 32

CLIMATES = ["misty", "arid", "frozen", "humid", "windy", "mild"]
EXPORTS = ["salt", "amber", "silk", "copper", "tea", "glass", "wool", "pearls"]
FESTIVALS = ["Lantern Festival", "Harvest Festival", "Tide Festival",
             "Frost Festival", "Ember Festival", "Bloom Festival"]
COLORS = ["red", "blue", "green", "golden", "silver", "black", "white", "violet"]
DIETS = ["seeds", "fish", "insects", "moss", "fruit", "roots", "shells", "nectar"]
TRADES = ["fisher", "healer", "scribe", "miner", "weaver", "navigator", "baker",
          "herbalist"]

TASK_NAME = "vessa-isles"
TASK_DESCRIPTION = ("Answer questions about the islands, towns, creatures and "
                    "people of the Vessa Isles, a made-up archipelago. Answers "
                    "are short: a name or a word.")
RUBRIC = "The answer is correct, complete and directly answers the question."

# kind: (sub-topic, subject type, value type, question templates). {s} is the
# subject; templates[0] is the canonical phrasing.
KINDS = {
    "capital": ("Island capitals", "island", "town",
                ["What is the capital of {s}?", "Which town is the capital of {s}?"]),
    "climate": ("Island climates", "island", "climate",
                ["What is the climate of {s}?", "What kind of climate does {s} have?"]),
    "export": ("Island exports", "island", "export",
               ["What does {s} export?", "What is the main export of {s}?"]),
    "town_island": ("Towns and their islands", "town", "island",
                    ["On which island is {s}?", "Which island is the town of {s} on?"]),
    "festival": ("Town festivals", "town", "festival",
                 ["Which festival is {s} known for?", "What festival does {s} hold?"]),
    "color": ("Creature colors", "creature", "color",
              ["What color is the {s}?", "What is the color of the {s}?"]),
    "diet": ("Creature diets", "creature", "diet",
             ["What does the {s} eat?", "What is the diet of the {s}?"]),
    "home": ("Creature homes", "creature", "island",
             ["Where does the {s} live?", "On which island does the {s} live?"]),
    "hometown": ("Hometowns of people", "person", "town",
                 ["Where was {s} born?", "Which town is {s} from?"]),
    "trade": ("Trades of people", "person", "trade",
              ["What is the trade of {s}?", "What work does {s} do?"]),
}
SUBTOPICS = [v[0] for v in KINDS.values()]
KIND_OF_SUBTOPIC = {v[0]: k for k, v in KINDS.items()}

# Seed prompts for the Self-Instruct task: one question per kind, of
# entities picked by the world's own generator (seed_prompts()).

_C = "bdfgklmnprstvz"
_V = "aeiou"
_WORDS = {"Tuna", "Demo", "Pina", "Pera", "Menu", "Soda", "Mama", "Lava", "Rape", "Notes",
          "Veda", "Tude", "Limuzin", "Pili", "Taba", "Rini"}
_CREATURE_HEADS = ["ash", "bram", "cor", "dun", "ember", "fen", "glim", "hol", "ivy",
                   "jet", "kel", "lum", "moss", "net", "ore", "pip", "quill", "rust",
                   "sab", "thorn"]
_CREATURE_TAILS = ["back", "fin", "wing", "tail", "horn", "claw", "snout", "hop",
                   "crest", "shell", "paw", "tusk"]


def _proper(rng, used, syllables):
    while True:
        s = "".join(rng.choice(_C) + rng.choice(_V) + (rng.choice("nrlsk") if rng.random() < 0.3 else "")
                    for _ in range(syllables))
        s = s.capitalize()
        # No doubled syllable (Papa) and no two names with the same first
        # three letters (Bovi, Bovo): a small model should not have to tell
        # names apart by their last letter.
        if (4 <= len(s) <= 8 and s[:2].lower() != s[2:4] and s[:3] not in used
                and s not in _WORDS):
            used.add(s[:3])
            return s


class World:
    """Entities, facts and value lists of one seeded world."""

    def __init__(self, seed=SEED):
        rng = random.Random(seed)
        used = set()
        self.islands = [_proper(rng, used, 2) for _ in range(N_ISLANDS)]
        self.towns = [_proper(rng, used, 2) for _ in range(N_ISLANDS * TOWNS_PER_ISLAND)]
        self.people = [_proper(rng, used, rng.choice([2, 3])) for _ in range(N_PEOPLE)]
        pairs = [h + t for h in _CREATURE_HEADS for t in _CREATURE_TAILS]
        rng.shuffle(pairs)
        self.creatures = sorted(pairs[:N_CREATURES])
        self.values = {"island": self.islands, "town": self.towns, "climate": CLIMATES,
                       "export": EXPORTS, "festival": FESTIVALS, "color": COLORS,
                       "diet": DIETS, "trade": TRADES}
        self.subjects = {"island": self.islands, "town": self.towns,
                         "creature": self.creatures, "person": self.people}
        f = {}
        for i, isl in enumerate(self.islands):
            mine = self.towns[i * TOWNS_PER_ISLAND:(i + 1) * TOWNS_PER_ISLAND]
            for t in mine:
                f[("town_island", t)] = isl
            f[("capital", isl)] = rng.choice(mine)
            f[("climate", isl)] = rng.choice(CLIMATES)
            f[("export", isl)] = rng.choice(EXPORTS)
        for t in self.towns:
            f[("festival", t)] = rng.choice(FESTIVALS)
        for c in self.creatures:
            f[("color", c)] = rng.choice(COLORS)
            f[("diet", c)] = rng.choice(DIETS)
            f[("home", c)] = rng.choice(self.islands)
        for p in self.people:
            f[("hometown", p)] = rng.choice(self.towns)
            f[("trade", p)] = rng.choice(TRADES)
        self.facts = f
        # A fixed order of facts: by kind as KINDS lists them, then subject.
        self.fact_list = sorted(f, key=lambda k: (list(KINDS).index(k[0]), k[1]))
        self._parsers = [(kind, re.compile("^" + re.escape(t).replace(re.escape("{s}"), "(.+?)") + "$",
                                           re.IGNORECASE))
                         for kind, (_, _, _, ts) in KINDS.items() for t in ts]
        self.entities = len(self.islands) + len(self.towns) + len(self.creatures) + len(self.people)

    # --- questions and answers -------------------------------------------

    def question(self, fact, template=0):
        kind, subj = fact
        return KINDS[kind][3][template].format(s=subj)

    def answer(self, fact):
        return self.facts[fact]

    def choices(self, fact, rng, k=4):
        """The true value and k-1 other values of the same type, shuffled."""
        kind = fact[0]
        pool = [v for v in self.values[KINDS[kind][2]] if v != self.facts[fact]]
        ch = rng.sample(pool, k - 1) + [self.facts[fact]]
        rng.shuffle(ch)
        return ch, ch.index(self.facts[fact])

    def facts_of(self, kind):
        return [f for f in self.fact_list if f[0] == kind]

    def describe(self, kind, subj):
        """One sentence per fact, as a short description of an entity."""
        v = self.facts[(kind, subj)]
        return {
            "capital": f"The capital of {subj} is {v}.",
            "climate": f"{subj} has a {v} climate.",
            "export": f"{subj} exports {v}.",
            "town_island": f"{subj} is a town on {v}.",
            "festival": f"{subj} is known for the {v}.",
            "color": f"The {subj} is {v}.",
            "diet": f"The {subj} eats {v}.",
            "home": f"The {subj} lives on {v}.",
            "hometown": f"{subj} was born in {v}.",
            "trade": f"{subj} is a {v}.",
        }[kind]

    # --- checking generated text ----------------------------------------

    def parse_question(self, q):
        """(kind, subject) of a question in one of the templates, else None."""
        q = " ".join(str(q).split())
        for kind, rx in self._parsers:
            m = rx.match(q)
            if m:
                s = m.group(1)
                for cand in self.subjects[KINDS[kind][1]]:
                    if cand.lower() == s.lower():
                        return (kind, cand)
        return None

    def value_in(self, kind, text):
        """The values of kind's type that text names (as whole words)."""
        t = " " + re.sub(r"[^a-z ]", " ", str(text).lower()) + " "
        return [v for v in self.values[KINDS[kind][2]] if " " + v.lower() + " " in t]

    def check_pair(self, question, answer):
        """'true', 'false' or 'unknown' (not a question of the world's templates)."""
        fact = self.parse_question(question)
        if fact is None:
            return "unknown"
        named = self.value_in(fact[0], answer)
        return "true" if named == [self.facts[fact]] else "false"


def seed_prompts(world, n=8, seed=SEED + 1):
    """n example requests, one per kind in KINDS order (n <= len(KINDS))."""
    rng = random.Random(seed)
    out = []
    for kind in list(KINDS)[:n]:
        fact = rng.choice(world.facts_of(kind))
        out.append(world.question(fact, 0))
    return out


def task(world):
    return {"name": TASK_NAME, "description": TASK_DESCRIPTION,
            "seed_prompts": seed_prompts(world)}
