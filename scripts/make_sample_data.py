"""Generate the small sample datasets bundled with runner (src/runner/data/sample_data/).

One dataset per task head, so that `python -m runner` works out of the box without a
download: sentiment (seqcls), SQuAD-style QA (qa), English->German translation (seq2seq),
plain prose (causal_lm) and NER (tokencls). Everything is built here from this file's own
templates and word lists (no third-party data), with a fixed random seed and the standard
library only, so running it again rewrites byte-identical files:

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import json
import random
import string
import textwrap
from collections.abc import Callable
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "src" / "runner" / "data" / "sample_data"
SEED = 20240611


# ------------------------------------------------------------------------------ helpers


def a_or_an(word: str) -> str:
    """The English indefinite article for the word that follows it."""
    if word.lower().startswith(("use", "uni", "usu")):  # "a useless", "a uniform"
        return "a"
    return "an" if word[:1].lower() in "aeiou" else "a"


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def unique_split(
    make: Callable[[random.Random], object],
    rng: random.Random,
    n_train: int,
    n_validation: int,
    key: Callable[[object], object] = lambda x: x,
) -> tuple[list, list]:
    """Draw distinct items from `make` until there are enough, then split train/validation."""
    seen: set = set()
    items: list = []
    attempts = 0
    while len(items) < n_train + n_validation:
        attempts += 1
        if attempts > 200 * (n_train + n_validation):
            raise RuntimeError(f"only {len(items)} distinct items; enlarge the vocabulary")
        item = make(rng)
        if item is None or key(item) in seen:
            continue
        seen.add(key(item))
        items.append(item)
    return items[:n_train], items[n_train:]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ---------------------------------------------------------------------------- sentiment
# Review-like sentences about several domains, built from templates. The label is carried
# by many different words and phrases (and sometimes by negation or by the main clause of
# a mixed sentence), never by a single keyword.

DOMAINS = {
    "movie": {
        "items": ["movie", "film", "documentary", "thriller", "comedy", "sequel", "drama"],
        "aspects": ["plot", "acting", "soundtrack", "ending", "script", "camera work",
                    "pacing", "dialogue", "cast", "special effects", "lead actor", "villain",
                    "opening scene", "humour", "costumes"],
        "pos": ["gripping", "moving", "hilarious", "captivating", "thrilling", "clever",
                "beautifully shot", "touching", "suspenseful", "witty"],
        "neg": ["predictable", "confusing", "clichéd", "slow", "pointless", "overlong",
                "painfully long", "shallow", "cheesy", "hard to follow"],
        "pos_verdicts": ["I would happily watch it again", "I was hooked from the first minute",
                         "it deserves every award it gets", "the whole audience applauded"],
        "neg_verdicts": ["I nearly walked out halfway through", "I kept checking my watch",
                         "I want those two hours back", "half the audience fell asleep"],
        "experience": "watching",
        "prep": "in",
    },
    "restaurant": {
        "items": ["restaurant", "bistro", "diner", "cafe", "pizzeria", "steakhouse",
                  "sushi bar", "bakery"],
        "aspects": ["food", "service", "pasta", "dessert", "staff", "atmosphere", "menu",
                    "portions", "coffee", "wine list", "soup", "fries", "waiter", "bread",
                    "prices"],
        "pos": ["cosy", "welcoming", "charming", "lively", "affordable", "spotless",
                "family-friendly", "relaxed", "elegant", "friendly"],
        "neg": ["greasy", "dirty", "noisy", "cramped", "overpriced", "chaotic", "unfriendly",
                "gloomy", "understaffed", "filthy"],
        "pos_verdicts": ["we will definitely eat here again", "I already booked another table",
                         "I cleaned my plate", "it is my new favourite place to eat"],
        "neg_verdicts": ["we left hungry and annoyed", "I will never eat there again",
                         "I sent my plate back twice", "we had to wait an hour for cold food"],
        "experience": "eating at",
        "prep": "at",
    },
    "hotel": {
        "items": ["hotel", "inn", "resort", "guesthouse", "hostel", "motel"],
        "aspects": ["room", "bed", "staff", "breakfast", "location", "pool", "view",
                    "check-in", "bathroom", "lobby", "wifi", "towels", "air conditioning",
                    "reception desk"],
        "pos": ["spotless", "comfortable", "spacious", "quiet", "cosy", "welcoming", "bright",
                "peaceful", "clean", "relaxing"],
        "neg": ["dirty", "cramped", "noisy", "filthy", "run-down", "smelly", "chaotic",
                "uncomfortable", "freezing", "shabby"],
        "pos_verdicts": ["we are already planning our next stay", "I slept like a baby",
                         "it felt like a home away from home", "we did not want to leave"],
        "neg_verdicts": ["we checked out a day early", "I barely slept at all",
                         "we asked for a refund", "I would rather sleep in my car"],
        "experience": "staying at",
        "prep": "at",
    },
    "product": {
        "items": ["blender", "vacuum cleaner", "backpack", "phone case", "laptop", "kettle",
                  "pair of headphones", "desk lamp", "coffee maker", "jacket", "toaster",
                  "keyboard", "suitcase", "pair of boots", "smartwatch"],
        "aspects": ["battery", "build quality", "design", "price", "sound", "packaging",
                    "instructions", "material", "motor", "zipper", "screen", "charger",
                    "handle", "buttons", "delivery"],
        "pos": ["sturdy", "reliable", "durable", "well made", "handy", "intuitive",
                "lightweight", "practical", "elegant", "powerful"],
        "neg": ["flimsy", "cheap", "unreliable", "broken", "useless", "clumsy", "fragile",
                "faulty", "awkward", "noisy"],
        "pos_verdicts": ["it was worth every penny", "I already ordered one for my sister",
                         "I use it every single day", "it does exactly what it promises"],
        "neg_verdicts": ["it broke within a week", "I sent it straight back",
                         "I regret wasting my money", "it stopped working after two days"],
        "experience": "buying",
        "prep": "of",
    },
    "book": {
        "items": ["book", "novel", "memoir", "biography", "cookbook", "short story collection"],
        "aspects": ["writing", "characters", "story", "ending", "prose", "first chapter",
                    "translation", "main character", "dialogue", "cover", "research"],
        "pos": ["engaging", "thoughtful", "well written", "insightful", "beautifully written",
                "inspiring", "funny", "heartfelt", "rich", "absorbing"],
        "neg": ["dry", "repetitive", "badly written", "flat", "predictable", "confusing",
                "preachy", "shallow", "long-winded", "dull"],
        "pos_verdicts": ["I finished it in a single weekend", "I could not put it down",
                         "I have already lent it to three friends", "I will read it again"],
        "neg_verdicts": ["I gave up after fifty pages", "I had to force myself to finish it",
                         "it put me to sleep every night",
                         "it is going straight to the charity shop"],
        "experience": "reading",
        "prep": "in",
    },
    "app": {
        "items": ["app", "game", "video game", "website", "puzzle game", "fitness app"],
        "aspects": ["controls", "graphics", "interface", "levels", "updates", "story mode",
                    "loading times", "customer support", "menus", "sound effects",
                    "tutorial", "multiplayer mode"],
        "pos": ["smooth", "addictive", "polished", "intuitive", "responsive", "fun",
                "well designed", "fast", "rewarding", "easy to use"],
        "neg": ["buggy", "laggy", "clunky", "confusing", "unresponsive", "glitchy",
                "repetitive", "slow", "frustrating", "full of ads"],
        "pos_verdicts": ["I have played it every evening this week", "it is worth every cent",
                         "my whole family loves it", "it made my daily routine easier"],
        "neg_verdicts": ["I uninstalled it after an hour", "it crashed five times in a row",
                         "I asked for a refund", "it drained my battery in no time"],
        "experience": "downloading",
        "prep": "in",
    },
    "concert": {
        "items": ["concert", "show", "play", "musical", "festival", "comedy gig", "opera"],
        "aspects": ["band", "singer", "sound system", "venue", "seats", "encore", "lighting",
                    "opening act", "tickets", "crowd", "stage design", "lyrics"],
        "pos": ["electric", "energetic", "unforgettable", "breathtaking", "joyful",
                "spellbinding", "uplifting", "lively", "magical", "powerful"],
        "neg": ["lifeless", "chaotic", "overpriced", "flat", "out of tune", "half empty",
                "disorganised", "too loud", "sloppy", "uninspired"],
        "pos_verdicts": ["I sang along to every song", "I would buy tickets again tomorrow",
                         "the whole crowd was dancing", "it was the highlight of my year"],
        "neg_verdicts": ["we left before the encore", "I could barely hear anything",
                         "it was not worth the ticket price", "the crowd started booing"],
        "experience": "going to",
        "prep": "at",
    },
}

PLURAL_ASPECTS = {
    "special effects", "costumes", "portions", "fries", "prices", "towels", "characters",
    "controls", "graphics", "levels", "updates", "loading times", "menus", "sound effects",
    "seats", "tickets", "lyrics", "buttons", "instructions",
}

# generic words, which suit any aspect of any domain
POS_GRADABLE = [
    "good", "nice", "pleasant", "impressive", "charming", "satisfying", "lovely", "beautiful",
    "solid", "refreshing", "memorable", "delightful", "well done", "wonderful", "great",
    "a real treat", "a pleasant surprise", "a joy", "spot on",
]
POS_EXTREME = [
    "excellent", "wonderful", "fantastic", "superb", "outstanding", "brilliant", "amazing",
    "terrific", "flawless", "perfect", "stellar", "marvellous", "exceptional", "top-notch",
    "phenomenal", "spectacular", "magnificent", "incredible", "first-rate", "sublime",
]
NEG_GRADABLE = [
    "bad", "poor", "disappointing", "dull", "boring", "bland", "mediocre", "sloppy", "tedious",
    "frustrating", "messy", "underwhelming", "annoying", "weak", "lazy", "uninspired",
    "tiresome", "unpleasant", "forgettable", "a letdown", "a real problem", "a joke",
]
NEG_EXTREME = [
    "terrible", "awful", "horrible", "dreadful", "atrocious", "abysmal", "appalling",
    "unbearable", "pathetic", "disastrous", "hopeless", "a total letdown",
    "a complete disaster", "a waste of money", "useless", "rubbish", "laughable",
]
INT_GRADABLE = ["", "", "", "very", "really", "quite", "pretty", "incredibly", "extremely",
                "genuinely", "remarkably", "surprisingly", "so", "rather"]
INT_EXTREME = ["", "", "", "absolutely", "truly", "simply", "just", "honestly"]
NEG_ONLY_INT = ["a bit", "far too", "painfully", "somewhat", "terribly"]

POS_VERDICTS = [
    "I would definitely recommend it", "I highly recommend it", "I will be back soon",
    "it exceeded all my expectations", "it made my day", "I loved every minute of it",
    "it gets five stars from me", "I cannot wait for more", "it was a real pleasure",
    "I would do it all over again", "my friends loved it too", "it was money well spent",
]
NEG_VERDICTS = [
    "I would not recommend it", "I want my money back", "I will never make that mistake again",
    "it was a complete waste of time", "you should avoid it at all costs", "one star is generous",
    "it was a huge letdown", "I expected much more", "I will not be going back",
    "my friends hated it too", "it ruined my evening", "you should save your money",
]
POS_OPENERS = ["", "", "", "Honestly, ", "To be honest, ", "Overall, ", "I have to say ",
               "In my opinion, ", "Frankly, ", "All in all, ", "Thankfully, ", "Luckily, "]
NEG_OPENERS = ["", "", "", "Honestly, ", "To be honest, ", "Overall, ", "I have to say ",
               "In my opinion, ", "Frankly, ", "All in all, ", "Sadly, ", "Unfortunately, "]
POS_VERBS = ["loved", "adored", "really enjoyed", "was impressed by", "was blown away by",
             "fell in love with", "was delighted with", "thoroughly enjoyed", "really liked"]
NEG_VERBS = ["hated", "disliked", "was disappointed by", "could not stand", "did not enjoy",
             "was let down by", "was annoyed by", "regretted choosing", "was fed up with"]
# negations that flip a word's usual polarity
NEG_MAKES_POS = ["not {neg} at all", "anything but {neg}", "far from {neg}",
                 "never {neg} for a second", "not the least bit {neg}",
                 "not {neg} in the slightest"]
NEG_MAKES_NEG = ["not {pos}", "not very {pos}", "not {pos} at all", "far from {pos}",
                 "hardly {pos}", "anything but {pos}", "not nearly as {pos} as I hoped"]
FIXED_NEG_POS = ["not bad at all", "not too shabby", "no disappointment whatsoever",
                 "nothing to complain about"]
FIXED_NEG_NEG = ["not good", "nothing special", "not worth the money", "not what I expected",
                 "not good enough", "not worth the hype"]


def be(aspect: str) -> str:
    return "were" if aspect in PLURAL_ASPECTS else "was"


def sentiment_adjective(rng: random.Random, domain: dict, positive: bool,
                        item: bool = False) -> str:
    """An (optionally intensified) adjective phrase of one polarity.

    Domain words ("gripping", "spotless") describe the item itself; aspects ("the plot",
    "the towels") only get the generic words, which suit any of them.
    """
    roll = rng.random()
    if item and roll < 0.4:
        adjective = rng.choice(domain["pos" if positive else "neg"])
        intensifiers = INT_GRADABLE + ([] if positive else NEG_ONLY_INT)
    elif roll < 0.7:
        adjective = rng.choice(POS_GRADABLE if positive else NEG_GRADABLE)
        intensifiers = INT_GRADABLE + ([] if positive else NEG_ONLY_INT)
    else:
        adjective = rng.choice(POS_EXTREME if positive else NEG_EXTREME)
        intensifiers = INT_EXTREME
    if adjective.startswith("a ") or adjective == "spot on":  # these take no intensifier
        return adjective
    intensifier = rng.choice(intensifiers)
    return f"{intensifier} {adjective}".strip()


def plain_adjective(rng: random.Random, domain: dict, positive: bool) -> str:
    """A single attributive adjective (usable as 'a ... hotel')."""
    pool = (domain["pos"] + POS_GRADABLE + POS_EXTREME if positive
            else domain["neg"] + NEG_GRADABLE + NEG_EXTREME)
    pool = [w for w in pool if " " not in w]
    return rng.choice(pool)


def negated_phrase(rng: random.Random, domain: dict, positive: bool, item: bool) -> str:
    """A negation whose meaning has the requested polarity ('not bad at all' is positive)."""
    if rng.random() < 0.3:
        return rng.choice(FIXED_NEG_POS if positive else FIXED_NEG_NEG)
    own = domain["neg" if positive else "pos"] if item else []
    words = [w for w in own + (NEG_GRADABLE if positive else POS_GRADABLE)
             if not w.startswith("a ") and w != "spot on"]  # "not very a joy"
    if positive:
        return rng.choice(NEG_MAKES_POS).format(neg=rng.choice(words))
    return rng.choice(NEG_MAKES_NEG).format(pos=rng.choice(words))


SOFT_POS = ["fine", "decent", "nice enough", "okay", "acceptable", "pleasant enough",
            "not bad", "good enough"]
SOFT_NEG_PREFIX = ["a little ", "a bit ", "slightly ", "somewhat "]
SOFT_NEG = ["disappointing", "dull", "boring", "bland", "messy", "weak", "annoying",
            "forgettable", "underwhelming", "unpleasant"]


def soft_opposite(rng: random.Random, positive: bool) -> str:
    """A mild opinion against the overall polarity (the minor point of a mixed review)."""
    if positive:
        return rng.choice(SOFT_NEG_PREFIX) + rng.choice(SOFT_NEG)
    return rng.choice(SOFT_POS)


def verdict(rng: random.Random, domain: dict, positive: bool) -> str:
    own = domain["pos_verdicts" if positive else "neg_verdicts"]
    generic = POS_VERDICTS if positive else NEG_VERDICTS
    return rng.choice(own) if rng.random() < 0.4 else rng.choice(generic)


def review(rng: random.Random, positive: bool) -> str:
    """One review sentence (or two short ones) with the given polarity."""
    domain = DOMAINS[rng.choice(list(DOMAINS))]
    item = rng.choice(domain["items"])
    aspect, aspect2 = rng.sample(domain["aspects"], 2)
    opener = rng.choice(POS_OPENERS if positive else NEG_OPENERS)
    adj = sentiment_adjective(rng, domain, positive)
    adj2 = sentiment_adjective(rng, domain, positive)
    other = soft_opposite(rng, positive) if rng.random() < 0.6 else sentiment_adjective(
        rng, domain, not positive)
    tense = rng.choice(["is", "was"])
    kind = rng.choices(
        ["aspect", "two_aspects", "item_verdict", "verb", "what_a", "negation", "mixed_but",
         "although", "compare", "recommend", "fragment", "aspect_verdict"],
        weights=[10, 10, 10, 10, 6, 7, 6, 4, 5, 6, 6, 8],
    )[0]
    if kind == "aspect":
        tail = rng.choice(["", f" {domain['prep']} this {item}"])
        text = f"{opener}the {aspect}{tail} {be(aspect)} {adj}."
        if len(text.split()) < 6:
            text = f"{opener}the {aspect} {be(aspect)} {adj}, {verdict(rng, domain, positive)}."
    elif kind == "two_aspects":
        joiner = rng.choice(["and", "and", "while", "and even"])
        text = (f"{opener}the {aspect} {be(aspect)} {adj} {joiner} the {aspect2} "
                f"{be(aspect2)} {adj2}.")
    elif kind == "item_verdict":
        adj = sentiment_adjective(rng, domain, positive, item=True)
        rest = verdict(rng, domain, positive)
        text = rng.choice([f"{opener}this {item} {tense} {adj}, and {rest}.",
                           f"{opener}this {item} {tense} {adj}; {rest}.",
                           f"{opener}this {item} {tense} {adj}. {capitalize(rest)}."])
    elif kind == "verb":
        verb = rng.choice(POS_VERBS if positive else NEG_VERBS)
        target = rng.choice([f"this {item}", f"the {aspect}", f"the {aspect} of this {item}"])
        if verb == "regretted choosing" and target.startswith("the "):
            verb = "was disappointed by"
        text = f"I {verb} {target}"
        text += rng.choice([
            f". The {aspect2} {be(aspect2)} {adj2} too.",
            f", and {verdict(rng, domain, positive)}.",
            f"; the {aspect2} {be(aspect2)} {adj2}.",
            ".",
        ])
        if len(text.split()) < 6:
            text = text[:-1] + f" and {verdict(rng, domain, positive)}."
    elif kind == "what_a":
        word = plain_adjective(rng, domain, positive)
        text = f"What {a_or_an(word)} {word} {item}! {capitalize(verdict(rng, domain, positive))}."
    elif kind == "negation":
        subject = rng.choice([f"the {aspect}", f"this {item}", f"the {aspect} here"])
        phrase = negated_phrase(rng, domain, positive, item=subject.startswith("this"))
        verb = be(aspect) if subject.startswith("the ") else tense
        text = f"{opener}{subject} {verb} {phrase}"
        text += rng.choice([".", f", and {verdict(rng, domain, positive)}.",
                            f"; the {aspect2} {be(aspect2)} {adj2} as well."])
        if len(text.split()) < 6:
            text = text[:-1] + f", and {verdict(rng, domain, positive)}."
    elif kind == "mixed_but":
        text = (f"The {aspect} {be(aspect)} {other}, but the {aspect2} {be(aspect2)} {adj}, "
                f"so {verdict(rng, domain, positive)}.")
    elif kind == "although":
        conj = rng.choice(["Although", "Even though", "While", "Despite the fact that"])
        text = (f"{conj} the {aspect} {be(aspect)} {other}, "
                f"{verdict(rng, domain, positive)}.")
        if rng.random() < 0.5:
            text = text[:-1] + f" because the {aspect2} {be(aspect2)} {adj}."
    elif kind == "compare":
        how = rng.choice(["much ", "far ", "way ", "a lot ", ""])
        better = "better" if positive else "worse"
        than = rng.choice(["I expected", "the reviews suggested", "the last one I tried",
                           "I had hoped" if positive else "I had feared",
                           f"any other {item} I know"])
        text = f"This {item} {tense} {how}{better} than {than}"
        text += rng.choice([".", f"; the {aspect} {be(aspect)} {adj}.",
                            f", and {verdict(rng, domain, positive)}."])
    elif kind == "recommend":
        if positive:
            would = rng.choice(["would definitely", "would happily", "can easily",
                                "would gladly", "would absolutely"])
        else:
            would = rng.choice(["would never", "would not", "cannot", "could never",
                                "would think twice before I"])
        who = rng.choice(["anyone", "my friends", "a friend", "my family", "anyone who asks",
                          "my best friend" if positive else "my worst enemy"])
        text = f"I {would} recommend this {item} to {who}"
        text += rng.choice([".", f"; the {aspect} {be(aspect)} {adj}.",
                            f" because the {aspect} {be(aspect)} {adj}."])
    elif kind == "fragment":
        word = plain_adjective(rng, domain, positive)
        text = (f"{capitalize(a_or_an(word))} {word} {item}: the {aspect} {be(aspect)} {adj} "
                f"and the {aspect2} {be(aspect2)} {adj2}.")
        if rng.random() < 0.5:
            text += f" {capitalize(verdict(rng, domain, positive))}."
    else:  # aspect_verdict
        text = (f"{opener}the {aspect} {be(aspect)} {adj}, and after {domain['experience']} "
                f"this {item} {rng.choice(['I can say', 'I must say', 'I think'])} "
                f"{verdict(rng, domain, positive)}.")
    return capitalize(" ".join(text.split()))


def make_sentiment(rng: random.Random) -> dict[str, list[dict]]:
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    used: set[str] = set()
    for positive in (False, True):
        label = "positive" if positive else "negative"

        def one(r: random.Random, positive: bool = positive) -> str | None:
            text = review(r, positive)
            n_words = len(text.split())
            return text if 6 <= n_words <= 30 and text not in used else None

        train, validation = unique_split(one, rng, 900, 225)
        used.update(train + validation)
        splits["train"] += [{"text": t, "label": label} for t in train]
        splits["validation"] += [{"text": t, "label": label} for t in validation]
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


# ----------------------------------------------------------------------------------- QA
# Encyclopedia-style paragraphs about fictional towns, people, inventions, companies and
# islands. Contexts are filled from templates with `fill`, which records where each field
# starts, so every answer is a span with an exact offset.

SYLLABLES_A = ["Bal", "Cor", "Dun", "El", "Fen", "Gal", "Hal", "Is", "Kor", "Lan", "Mor",
               "Nor", "Os", "Pel", "Quen", "Ros", "Sel", "Tor", "Ul", "Val", "Wex", "Yar",
               "Zan", "Brin", "Cal", "Dor", "Ev", "Gris", "Hol", "Jar", "Kel", "Lor", "Mar",
               "Ner", "Ol", "Pra", "Ren", "Sav", "Tal", "Ver"]
SYLLABLES_B = ["a", "e", "i", "o", "en", "ar", "or", "el", "an", "is", ""]
SYLLABLES_C = ["ford", "mere", "wick", "ston", "dale", "holm", "vik", "mar", "ora", "ando",
               "burg", "heim", "grad", "stead", "moor", "fell", "haven", "ridge", "via", "ton"]
SURNAME_ENDINGS = ["ov", "ez", "sen", "ski", "elli", "ard", "ington", "berg", "ani", "ois",
                   "ström", "man", "ik", "etti", "ado"]
FIRST_NAMES_F = ["Elena", "Mira", "Ada", "Lena", "Clara", "Sofia", "Ines", "Greta", "Ida",
                 "Nora", "Vera", "Helena", "Tilda", "Marta", "Anika", "Rosa", "Lydia", "Freya"]
FIRST_NAMES_M = ["Tomas", "Anton", "Felix", "Oskar", "Henrik", "Milan", "Pavel", "Luca",
                 "Emil", "Jonas", "Victor", "Arno", "Bruno", "Casimir", "Dario", "Hugo",
                 "Leon", "Rafael"]
DEMONYMS = {"Veloria": "Velorian", "Astrand": "Astrandish", "Kelmaria": "Kelmarian",
            "Brisovia": "Brisovian", "Talmoor": "Talmoorish", "Orrenland": "Orrenlandish",
            "Nuvaro": "Nuvaran", "Calderia": "Calderian", "Esmark": "Esmarkish",
            "Lunessa": "Lunessan", "Darovia": "Darovian", "Sarnland": "Sarnish"}
COUNTRIES = list(DEMONYMS)
REGIONS = ["northern", "southern", "eastern", "western", "central", "coastal", "highland",
           "lake"]
PROFESSIONS = ["merchant", "fisherman", "blacksmith", "monk", "carpenter", "weaver",
               "sailor", "miller", "farmer", "stonemason", "physician", "baker"]
COLORS = ["red", "blue", "green", "yellow", "white", "grey", "orange", "purple", "black",
          "golden", "silver", "pink"]
LANDMARKS = ["bridges", "towers", "windmills", "churches", "warehouses", "lighthouses",
             "gates", "houses", "fountains"]
SEASONS = ["spring", "summer", "autumn", "winter"]
SUBJECTS = ["mathematics", "chemistry", "botany", "astronomy", "music", "architecture",
            "medicine", "painting", "geology", "philosophy", "engineering", "law"]
PROFESSIONS_2 = ["painter", "composer", "chemist", "astronomer", "architect", "poet",
                 "botanist", "engineer", "sculptor", "mathematician", "novelist", "physician"]
ACHIEVEMENTS = {
    "painter": "her large paintings of harbours", "composer": "a cycle of twelve symphonies",
    "chemist": "discovering a new blue dye", "astronomer": "mapping a distant comet",
    "architect": "designing the city's glass market hall", "poet": "a long poem about the sea",
    "botanist": "describing over two hundred mountain plants",
    "engineer": "building the first railway tunnel in the country",
    "sculptor": "a bronze statue of a horse", "mathematician": "a new method for solving equations",
    "novelist": "a trilogy of novels about a fishing village",
    "physician": "founding the first children's hospital in the region",
}
AWARDS = ["Golden Quill Prize", "Silver Compass Medal", "Royal Academy Award",
          "Order of the Lantern", "Harbour Medal", "Crystal Star Prize"]
SCHOOLS = ["University of {c}", "Academy of {c}", "Royal College of {c}",
           "{c} Institute of Arts", "{c} Polytechnic"]
DEVICES = ["loom", "lamp", "pump", "press", "clock", "telescope", "stove", "compass",
           "bicycle", "typewriter", "barometer", "water filter", "plough", "kite"]
PURPOSES = ["measure the depth of rivers", "keep bread fresh for several days",
            "signal ships in thick fog", "pump water out of flooded mines",
            "print maps in four colours", "record changes in air pressure",
            "help farmers sow seeds in straight rows", "heat small houses with very little wood",
            "send messages with flashes of light", "sort letters at the post office",
            "weave patterned carpets", "measure the speed of the wind"]
INDUSTRIES = ["shipping", "textile", "toy", "food", "furniture", "paper", "glass",
              "bicycle", "chocolate", "software", "pottery", "perfume"]
PRODUCTS = {
    "shipping": "cargo ship", "textile": "wool blanket", "toy": "wooden train",
    "food": "tinned fish soup", "furniture": "folding chair", "paper": "pocket notebook",
    "glass": "green bottle", "bicycle": "three-speed bicycle",
    "chocolate": "hazelnut bar", "software": "calendar program",
    "pottery": "blue teapot", "perfume": "lavender scent",
}
ANIMALS = ["fox", "owl", "heron", "bear", "wolf", "hare", "swan", "stag", "otter", "lion",
           "falcon", "whale"]
SEAS = ["Amber Sea", "Northern Ocean", "Sea of Calm", "Grey Sea", "Western Gulf",
        "Bay of Storms"]
ISLAND_INDUSTRIES = ["fishing", "sheep farming", "tourism", "salt making", "wine making",
                     "boat building", "wool spinning", "cheese making"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


class Names:
    """Fictional names that are never reused, so each entity is unique across both splits."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _fresh(self, make: Callable[[], str]) -> str:
        while True:
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name

    def place(self) -> str:
        r = self.rng
        return self._fresh(lambda: r.choice(SYLLABLES_A) + r.choice(SYLLABLES_B)
                           + r.choice(SYLLABLES_C))

    def surname(self) -> str:
        r = self.rng
        return self._fresh(lambda: r.choice(SYLLABLES_A) + r.choice(["", "r", "n", "d"])
                           + r.choice(SURNAME_ENDINGS))

    def person(self, female: bool | None = None) -> str:
        if female is None:
            female = self.rng.random() < 0.5
        first = self.rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
        return f"{first} {self.surname()}"


def fill(template: str, values: dict) -> tuple[str, dict[str, int]]:
    """Format `template`; also return the character offset where each field first appears."""
    parts: list[str] = []
    offsets: dict[str, int] = {}
    position = 0
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        position += len(literal)
        if field is not None:
            value = str(values[field])
            offsets.setdefault(field, position)
            parts.append(value)
            position += len(value)
    return "".join(parts), offsets


def town_entity(rng: random.Random, names: Names) -> tuple[str, dict, list[str], dict]:
    name = names.place()
    founder_female = rng.random() < 0.3
    v = {
        "name": name, "size": rng.choice(["small", "quiet", "busy", "old", "hilly"]),
        "region": rng.choice(REGIONS), "country": rng.choice(COUNTRIES),
        "year": rng.randint(1050, 1750), "founder": names.person(founder_female),
        "profession": rng.choice(PROFESSIONS), "origin": names.place(),
        "river": f"{names.place()} River",
        "population": f"{rng.randint(2, 95)},{rng.randint(1, 9)}00",
        "color": rng.choice(COLORS), "landmarks": rng.choice(LANDMARKS),
        "century": rng.choice(["fifteenth", "sixteenth", "seventeenth", "eighteenth"]),
        "season": rng.choice(SEASONS), "market_day": rng.choice(["Monday", "Wednesday", "Friday",
                                                                 "Saturday"]),
        "fruit": rng.choice(["apples", "plums", "cherries", "pears", "grapes", "apricots"]),
    }
    sentences = [
        "{name} is a {size} town in the {region} region of {country}.",
        rng.choice(["It was founded in {year} by {founder}, a {profession} from {origin}.",
                    "The town was founded by {founder}, a {profession} from {origin}, in {year}."]),
        rng.choice(["The town lies on the banks of the {river} and has a population of about "
                    "{population}.",
                    "About {population} people live in the town, which stands beside the "
                    "{river}."]),
        "{name} is best known for its {color} {landmarks}, which were built in the {century} "
        "century.",
        rng.choice(["Every {season}, the town holds a festival to celebrate the harvest of "
                    "{fruit}.",
                    "A large market is held in the main square every {market_day}."]),
    ]
    questions = {
        "year": ["When was {name} founded?", "In which year was {name} founded?"],
        "founder": ["Who founded {name}?", "Who was the founder of {name}?"],
        "profession": ["What was the profession of the founder of {name}?"],
        "origin": ["Where did the founder of {name} come from?"],
        "river": ["Which river flows past {name}?", "On which river does {name} lie?"],
        "population": ["How many people live in {name}?", "What is the population of {name}?"],
        "color": ["What colour are the {landmarks} of {name}?"],
        "country": ["In which country is {name} located?"],
        "century": ["In which century were the {landmarks} of {name} built?"],
        "fruit": ["Which fruit harvest does the festival in {name} celebrate?"],
        "market_day": ["On which day is the market held in {name}?"],
        "season": ["In which season does {name} hold its festival?"],
    }
    return name, v, sentences, questions


def person_entity(rng: random.Random, names: Names) -> tuple[str, dict, list[str], dict]:
    female = rng.random() < 0.5
    name = names.person(female)
    born = rng.randint(1700, 1930)
    profession = rng.choice(PROFESSIONS_2)
    achievement = ACHIEVEMENTS[profession]
    if not female:
        achievement = achievement.replace("her ", "his ")
    v = {
        "name": name, "born": born, "died": born + rng.randint(45, 92),
        "nationality": DEMONYMS[rng.choice(COUNTRIES)],
        "profession": profession, "city": names.place(), "subject": rng.choice(SUBJECTS),
        "school": rng.choice(SCHOOLS).format(c=names.place()), "achievement": achievement,
        "award": rng.choice(AWARDS), "award_year": born + rng.randint(28, 44),
        "spouse": names.person(not female), "spouse_job": rng.choice(PROFESSIONS),
        "children": rng.choice(["two", "three", "four", "five", "six"]),
        "He": "She" if female else "He", "he": "she" if female else "he",
        "His": "Her" if female else "His", "his": "her" if female else "his",
        "him": "her" if female else "him", "archive": f"{names.place()} City Library",
    }
    v["short"] = name.split()[1]
    sentences = [
        "{name} ({born}–{died}) was a {nationality} {profession} who spent most of {his} life "
        "in {city}.",
        "{He} studied {subject} at the {school} before becoming famous for {achievement}.",
        rng.choice(["In {award_year}, {he} received the {award}.",
                    "{short} was awarded the {award} in {award_year}."]),
        rng.choice(["{He} was married to {spouse}, a {spouse_job}, and had {children} children.",
                    "{short} and {his} partner {spouse}, a {spouse_job}, raised {children} "
                    "children."]),
        rng.choice(["Today a street in {city} is named after {him}.",
                    "{His} notebooks and letters are kept at the {archive}."]),
    ]
    questions = {
        "born": ["When was {name} born?", "In which year was {name} born?"],
        "died": ["In which year did {name} die?"],
        "city": ["In which city did {name} spend most of {his} life?"],
        "subject": ["What did {name} study?", "Which subject did {short} study?"],
        "school": ["Where did {name} study?"],
        "award": ["Which prize did {name} receive in {award_year}?"],
        "award_year": ["When did {name} receive the {award}?"],
        "spouse": ["Who was {name} married to?", "What was the name of {short}'s partner?"],
        "children": ["How many children did {name} have?"],
        "profession": ["What was {name}'s profession?"],
        "achievement": ["What made {name} famous?"],
        "archive": ["Where are the notebooks of {name} kept?"],
    }
    return name, v, sentences, questions


def invention_entity(rng: random.Random, names: Names) -> tuple[str, dict, list[str], dict]:
    device = rng.choice(DEVICES)
    name = f"{names.surname()} {device}"
    made = rng.randint(1750, 1950)
    v = {
        "name": name, "device_kind": rng.choice(["device", "machine", "tool"]),
        "inventor": names.person(),
        "year": made, "city": names.place(), "purpose": rng.choice(PURPOSES),
        "weight": f"{rng.randint(2, 180)} kilograms", "color": rng.choice(COLORS),
        "company": f"{names.place()} {rng.choice(['Works', 'Brothers', 'Company', 'Foundry'])}",
        "units": f"{rng.randint(2, 90)},000", "end_year": made + rng.randint(15, 60),
        "month": rng.choice(MONTHS), "museum": f"{names.place()} Museum of Technology",
    }
    sentences = [
        "The {name} is a {device_kind} invented by {inventor} in {year} in the city of {city}.",
        "It was designed to {purpose}.",
        rng.choice(["The first model weighed {weight} and was painted {color}.",
                    "The first model, painted {color}, weighed {weight}."]),
        "It was later manufactured by {company}, which sold more than {units} of them before "
        "{end_year}.",
        rng.choice(["The original model is kept at the {museum}.",
                    "It was first shown to the public in {month} {year}."]),
    ]
    questions = {
        "inventor": ["Who invented the {name}?", "Who was the inventor of the {name}?"],
        "year": ["When was the {name} invented?", "In which year was the {name} invented?"],
        "city": ["In which city was the {name} invented?"],
        "purpose": ["What was the {name} designed to do?"],
        "weight": ["How much did the first model of the {name} weigh?"],
        "color": ["What colour was the first {name}?"],
        "company": ["Which company manufactured the {name}?"],
        "units": ["How many units of the {name} did {company} sell?"],
        "museum": ["Where is the original {name} kept?"],
        "month": ["In which month was the {name} first shown to the public?"],
    }
    return name, v, sentences, questions


def company_entity(rng: random.Random, names: Names) -> tuple[str, dict, list[str], dict]:
    industry = rng.choice(INDUSTRIES)
    name = f"{names.place()} {rng.choice(['Industries', 'Group', 'Trading Company', 'Limited'])}"
    founded = rng.randint(1820, 2005)
    v = {
        "name": name, "industry": industry, "city": names.place(), "country": rng.choice(COUNTRIES),
        "year": founded, "founder1": names.person(), "founder2": names.person(),
        "employees": f"{rng.randint(1, 40)},{rng.randint(0, 9)}00",
        "product": PRODUCTS[industry], "color": rng.choice(COLORS),
        "animal": rng.choice(ANIMALS), "designer": names.person(),
        "logo_year": founded + rng.randint(1, 15), "ceo": names.person(),
        "stores": rng.randint(3, 250),
    }
    sentences = [
        "{name} is a {industry} company headquartered in {city}, {country}.",
        rng.choice(["It was founded in {year} by {founder1} and {founder2}.",
                    "{founder1} and {founder2} founded the company in {year}."]),
        "The company employs around {employees} people, and its best-selling product is the "
        "{product}.",
        "Its logo, a {color} {animal}, was designed by {designer} in {logo_year}.",
        rng.choice(["Since 2015 the company has been led by {ceo}.",
                    "Today it runs {stores} shops across the country."]),
    ]
    questions = {
        "city": ["Where is {name} headquartered?", "In which city is {name} based?"],
        "year": ["When was {name} founded?", "In what year was {name} founded?"],
        "founder1": ["Who founded {name} together with {founder2}?"],
        "employees": ["How many people does {name} employ?"],
        "product": ["What is the best-selling product of {name}?"],
        "animal": ["Which animal appears in the logo of {name}?"],
        "designer": ["Who designed the logo of {name}?"],
        "logo_year": ["When was the logo of {name} designed?"],
        "ceo": ["Who has led {name} since 2015?"],
        "stores": ["How many shops does {name} run?"],
        "industry": ["In which industry does {name} work?"],
    }
    return name, v, sentences, questions


def island_entity(rng: random.Random, names: Names) -> tuple[str, dict, list[str], dict]:
    name = names.place()
    first, second = rng.sample(ISLAND_INDUSTRIES, 2)
    v = {
        "name": name, "sea": rng.choice(SEAS), "distance": rng.randint(5, 240),
        "country": rng.choice(COUNTRIES), "area": rng.randint(12, 900),
        "peak": f"Mount {names.place()}", "height": f"{rng.randint(1, 2)},{rng.randint(100, 999)}",
        "year": rng.randint(1480, 1890), "explorer": names.person(),
        "industry1": first, "industry2": second, "capital": names.place(),
        "bird": rng.choice(["puffins", "gulls", "terns", "cormorants", "gannets", "albatrosses"]),
        "ferry_hours": rng.choice(["two", "three", "four", "five", "six"]),
    }
    sentences = [
        "{name} is an island in the {sea}, about {distance} kilometres off the coast of "
        "{country}.",
        "It covers an area of {area} square kilometres, and its highest point is {peak}, which "
        "rises to {height} metres.",
        "The island was first mapped in {year} by the explorer {explorer}.",
        "Today its main industries are {industry1} and {industry2}, and its capital is the "
        "port of {capital}.",
        rng.choice(["Large colonies of {bird} nest on its cliffs.",
                    "A ferry from the mainland takes about {ferry_hours} hours."]),
    ]
    questions = {
        "sea": ["In which sea does {name} lie?"],
        "area": ["How large is {name} in square kilometres?"],
        "peak": ["What is the highest point of {name}?"],
        "height": ["How high is {peak}?"],
        "year": ["When was {name} first mapped?"],
        "explorer": ["Who first mapped {name}?", "Which explorer first mapped {name}?"],
        "capital": ["What is the capital of {name}?"],
        "distance": ["How many kilometres from the coast of {country} is {name}?"],
        "bird": ["Which birds nest on the cliffs of {name}?"],
        "ferry_hours": ["How many hours does the ferry to {name} take?"],
        "industry1": ["Apart from {industry2}, what is a main industry of {name}?"],
    }
    return name, v, sentences, questions


ENTITY_MAKERS = [town_entity, person_entity, invention_entity, company_entity, island_entity]


def qa_article(rng: random.Random, names: Names, split: str, counter: list[int]) -> dict:
    maker = rng.choice(ENTITY_MAKERS)
    title, values, sentences, questions = maker(rng, names)
    if rng.random() < 0.3:  # the last sentence is an optional extra fact
        shorter, _ = fill(" ".join(sentences[:-1]), values)
        if len(shorter.split()) >= 50:
            sentences = sentences[:-1]
    context, offsets = fill(" ".join(sentences), values)
    n_words = len(context.split())
    assert 50 <= n_words <= 150, (n_words, context)
    available = [f for f in questions if f in offsets]
    qas = []
    for field in rng.sample(available, rng.randint(2, min(4, len(available)))):
        question, _ = fill(rng.choice(questions[field]), values)
        answer = str(values[field])
        start = offsets[field]
        assert context[start:start + len(answer)] == answer, (field, context)
        counter[0] += 1
        qas.append({"id": f"{split}-{counter[0]:05d}", "question": question,
                    "answers": [{"text": answer, "answer_start": start}]})
    return {"title": capitalize(title), "paragraphs": [{"context": context, "qas": qas}]}


def make_qa(rng: random.Random) -> dict[str, dict]:
    names = Names(rng)  # one name registry: validation entities never appear in train
    documents = {}
    for split, n_questions in (("train", 700), ("validation", 200)):
        counter = [0]
        articles = []
        while counter[0] < n_questions:
            articles.append(qa_article(rng, names, split, counter))
        documents[split] = {"version": "1.1", "data": articles}
    return documents


# -------------------------------------------------------------------------- translation
# English -> German from a small controlled grammar: present tense, nominative subjects,
# accusative objects (articles and adjective endings inflected by gender and case),
# fixed place and time phrases, negation with "nicht"/"kein", yes/no questions and
# time-first sentences (verb-second word order).


class Noun:
    def __init__(self, en: str, de: str, gender: str, en_pl: str | None = None,
                 de_pl: str | None = None, mass: bool = False):
        self.en, self.de, self.gender = en, de, gender
        self.en_pl, self.de_pl, self.mass = en_pl, de_pl, mass


def nouns(spec: str) -> list[Noun]:
    """'en/de/gender/en_pl/de_pl' entries separated by ';' ('-' for no plural = mass noun)."""
    out = []
    for entry in spec.split(";"):
        en, de, gender, en_pl, de_pl = (part.strip() for part in entry.split("/"))
        mass = en_pl == "-"
        out.append(Noun(en, de, gender, None if mass else en_pl, None if mass else de_pl, mass))
    return out


PEOPLE = nouns(
    "man/Mann/m/men/Männer; woman/Frau/f/women/Frauen; child/Kind/n/children/Kinder;"
    "girl/Mädchen/n/girls/Mädchen; teacher/Lehrer/m/teachers/Lehrer;"
    "doctor/Arzt/m/doctors/Ärzte; cook/Koch/m/cooks/Köche; friend/Freund/m/friends/Freunde;"
    "sister/Schwester/f/sisters/Schwestern; brother/Bruder/m/brothers/Brüder;"
    "mother/Mutter/f/mothers/Mütter; father/Vater/m/fathers/Väter;"
    "grandmother/Großmutter/f/grandmothers/Großmütter; baker/Bäcker/m/bakers/Bäcker;"
    "waiter/Kellner/m/waiters/Kellner; daughter/Tochter/f/daughters/Töchter;"
    "son/Sohn/m/sons/Söhne; neighbour/Nachbarin/f/neighbours/Nachbarinnen"
)
ANIMAL_NOUNS = nouns(
    "dog/Hund/m/dogs/Hunde; cat/Katze/f/cats/Katzen; horse/Pferd/n/horses/Pferde;"
    "bird/Vogel/m/birds/Vögel; cow/Kuh/f/cows/Kühe; duck/Ente/f/ducks/Enten;"
    "mouse/Maus/f/mice/Mäuse; rabbit/Kaninchen/n/rabbits/Kaninchen"
)
FOOD = nouns(
    "apple/Apfel/m/apples/Äpfel; bread/Brot/n/-/-; cake/Kuchen/m/cakes/Kuchen;"
    "soup/Suppe/f/-/-; fish/Fisch/m/fish/Fische; cheese/Käse/m/-/-;"
    "banana/Banane/f/bananas/Bananen;"
    "pear/Birne/f/pears/Birnen; egg/Ei/n/eggs/Eier; salad/Salat/m/salads/Salate;"
    "carrot/Karotte/f/carrots/Karotten; potato/Kartoffel/f/potatoes/Kartoffeln;"
    "rice/Reis/m/-/-; sausage/Wurst/f/sausages/Würste; orange/Orange/f/oranges/Orangen"
)
DRINKS = nouns(
    "tea/Tee/m/-/-; coffee/Kaffee/m/-/-; milk/Milch/f/-/-; water/Wasser/n/-/-;"
    "juice/Saft/m/-/-; lemonade/Limonade/f/-/-; wine/Wein/m/-/-"
)
READING = nouns(
    "book/Buch/n/books/Bücher; letter/Brief/m/letters/Briefe;"
    "newspaper/Zeitung/f/newspapers/Zeitungen; story/Geschichte/f/stories/Geschichten;"
    "poem/Gedicht/n/poems/Gedichte; map/Karte/f/maps/Karten;"
    "magazine/Zeitschrift/f/magazines/Zeitschriften"
)
THINGS = nouns(
    "car/Auto/n/cars/Autos; ball/Ball/m/balls/Bälle; table/Tisch/m/tables/Tische;"
    "chair/Stuhl/m/chairs/Stühle; lamp/Lampe/f/lamps/Lampen; bag/Tasche/f/bags/Taschen;"
    "window/Fenster/n/windows/Fenster; door/Tür/f/doors/Türen; box/Kiste/f/boxes/Kisten;"
    "bottle/Flasche/f/bottles/Flaschen; key/Schlüssel/m/keys/Schlüssel;"
    "umbrella/Regenschirm/m/umbrellas/Regenschirme; bicycle/Fahrrad/n/bicycles/Fahrräder;"
    "clock/Uhr/f/clocks/Uhren; cup/Tasse/f/cups/Tassen; plate/Teller/m/plates/Teller;"
    "shirt/Hemd/n/shirts/Hemden; jacket/Jacke/f/jackets/Jacken; picture/Bild/n/pictures/Bilder;"
    "house/Haus/n/houses/Häuser; boat/Boot/n/boats/Boote; bridge/Brücke/f/bridges/Brücken;"
    "flower/Blume/f/flowers/Blumen; tree/Baum/m/trees/Bäume; stone/Stein/m/stones/Steine;"
    "hat/Hut/m/hats/Hüte; pen/Stift/m/pens/Stifte; room/Zimmer/n/rooms/Zimmer;"
    "song/Lied/n/songs/Lieder; garden/Garten/m/gardens/Gärten"
)
PLACES_TO_VISIT = nouns(
    "museum/Museum/n/museums/Museen; zoo/Zoo/m/zoos/Zoos; castle/Schloss/n/castles/Schlösser;"
    "church/Kirche/f/churches/Kirchen; market/Markt/m/markets/Märkte;"
    "library/Bibliothek/f/libraries/Bibliotheken"
)


def by_name(group: list[Noun], *names: str) -> list[Noun]:
    wanted = set(names)
    return [n for n in group if n.en in wanted]


# Object nouns may not be weak masculine nouns (den Nachbarn...): none of the above are.
VISITABLE_PEOPLE = by_name(PEOPLE, "friend", "grandmother", "teacher", "doctor", "sister",
                           "brother", "mother", "father", "neighbour", "daughter", "son")

# verb: English (base, 3rd singular), German (ich, du, er/sie/es, wir/sie), objects
TRANSITIVE = [
    (("see", "sees"), ("sehe", "siehst", "sieht", "sehen"),
     ANIMAL_NOUNS + THINGS + VISITABLE_PEOPLE),
    (("eat", "eats"), ("esse", "isst", "isst", "essen"), FOOD),
    (("drink", "drinks"), ("trinke", "trinkst", "trinkt", "trinken"), DRINKS),
    (("read", "reads"), ("lese", "liest", "liest", "lesen"), READING),
    (("buy", "buys"), ("kaufe", "kaufst", "kauft", "kaufen"),
     FOOD + by_name(THINGS, "ball", "lamp", "bag", "umbrella", "bicycle", "clock", "cup", "shirt",
                    "jacket", "picture", "hat", "pen", "car") + by_name(READING, "book",
                                                                         "newspaper", "map")),
    (("have", "has"), ("habe", "hast", "hat", "haben"),
     ANIMAL_NOUNS + by_name(THINGS, "car", "ball", "bag", "key", "umbrella", "bicycle", "house",
                            "garden", "hat", "pen")),
    (("like", "likes"), ("mag", "magst", "mag", "mögen"),
     ANIMAL_NOUNS + FOOD + DRINKS + VISITABLE_PEOPLE),
    (("find", "finds"), ("finde", "findest", "findet", "finden"),
     by_name(THINGS, "ball", "key", "umbrella", "bag", "pen", "hat", "stone", "box", "cup")
     + by_name(ANIMAL_NOUNS, "mouse", "bird", "cat", "rabbit")),
    (("need", "needs"), ("brauche", "brauchst", "braucht", "brauchen"),
     by_name(THINGS, "car", "table", "chair", "lamp", "bag", "key", "umbrella", "bicycle",
             "clock", "cup", "plate", "shirt", "jacket", "pen", "box")),
    (("write", "writes"), ("schreibe", "schreibst", "schreibt", "schreiben"),
     by_name(READING, "letter", "story", "poem", "book") + by_name(THINGS, "song")),
    (("open", "opens"), ("öffne", "öffnest", "öffnet", "öffnen"),
     by_name(THINGS, "window", "door", "box", "bottle", "bag") + by_name(READING, "letter",
                                                                         "book")),
    (("carry", "carries"), ("trage", "trägst", "trägt", "tragen"),
     by_name(THINGS, "bag", "box", "chair", "lamp", "table", "umbrella", "bottle")),
    (("wash", "washes"), ("wasche", "wäschst", "wäscht", "waschen"),
     by_name(THINGS, "car", "shirt", "jacket", "cup", "plate") + by_name(ANIMAL_NOUNS, "dog",
                                                                          "horse")),
    (("cook", "cooks"), ("koche", "kochst", "kocht", "kochen"),
     by_name(FOOD, "soup", "fish", "rice", "egg", "potato", "carrot", "sausage")),
    (("visit", "visits"), ("besuche", "besuchst", "besucht", "besuchen"),
     VISITABLE_PEOPLE + PLACES_TO_VISIT),
    (("love", "loves"), ("liebe", "liebst", "liebt", "lieben"),
     ANIMAL_NOUNS + by_name(THINGS, "song", "garden", "house", "picture")),
    (("hear", "hears"), ("höre", "hörst", "hört", "hören"),
     by_name(ANIMAL_NOUNS, "dog", "bird", "cat", "duck") + by_name(THINGS, "song", "clock")),
    (("paint", "paints"), ("male", "malst", "malt", "malen"),
     by_name(THINGS, "picture", "house", "flower", "tree", "boat", "door", "chair")),
    (("feed", "feeds"), ("füttere", "fütterst", "füttert", "füttern"), ANIMAL_NOUNS),
    (("repair", "repairs"), ("repariere", "reparierst", "repariert", "reparieren"),
     by_name(THINGS, "car", "bicycle", "lamp", "chair", "clock", "door", "table", "boat")),
    (("build", "builds"), ("baue", "baust", "baut", "bauen"),
     by_name(THINGS, "house", "table", "chair", "boat", "bridge", "box")),
    (("catch", "catches"), ("fange", "fängst", "fängt", "fangen"),
     by_name(THINGS, "ball") + by_name(FOOD, "fish") + by_name(ANIMAL_NOUNS, "mouse", "bird")),
    (("take", "takes"), ("nehme", "nimmst", "nimmt", "nehmen"),
     by_name(THINGS, "bag", "umbrella", "key", "cup", "pen", "hat", "bicycle") + by_name(
         FOOD, "apple", "banana", "pear", "cake")),
    (("throw", "throws"), ("werfe", "wirfst", "wirft", "werfen"),
     by_name(THINGS, "ball", "stone", "hat", "key")),
    (("forget", "forgets"), ("vergesse", "vergisst", "vergisst", "vergessen"),
     by_name(THINGS, "key", "umbrella", "bag", "jacket", "hat", "pen") + by_name(READING, "book",
                                                                                 "map")),
    (("lose", "loses"), ("verliere", "verlierst", "verliert", "verlieren"),
     by_name(THINGS, "key", "umbrella", "bag", "ball", "hat", "pen")),
    (("draw", "draws"), ("zeichne", "zeichnest", "zeichnet", "zeichnen"),
     by_name(THINGS, "picture", "house", "tree", "flower", "car") + by_name(ANIMAL_NOUNS, "horse",
                                                                            "cat", "bird")),
    (("clean", "cleans"), ("putze", "putzt", "putzt", "putzen"),
     by_name(THINGS, "window", "room", "car", "table", "bicycle", "plate")),
    (("sell", "sells"), ("verkaufe", "verkaufst", "verkauft", "verkaufen"),
     by_name(THINGS, "car", "bicycle", "house", "boat", "lamp", "table", "picture")
     + by_name(FOOD, "bread", "cake", "cheese", "apple", "fish")),
]

PLACES = {
    "park": ("in the park", "im Park"), "garden": ("in the garden", "im Garten"),
    "kitchen": ("in the kitchen", "in der Küche"), "school": ("at school", "in der Schule"),
    "city": ("in the city", "in der Stadt"), "home": ("at home", "zu Hause"),
    "office": ("in the office", "im Büro"), "station": ("at the station", "am Bahnhof"),
    "market": ("at the market", "auf dem Markt"), "lake": ("in the lake", "im See"),
    "river": ("in the river", "im Fluss"), "sea": ("in the sea", "im Meer"),
    "village": ("in the village", "im Dorf"), "church": ("in the church", "in der Kirche"),
    "hotel": ("in the hotel", "im Hotel"), "bed": ("in bed", "im Bett"),
    "forest": ("in the forest", "im Wald"), "street": ("on the street", "auf der Straße"),
    "library": ("in the library", "in der Bibliothek"), "berlin": ("in Berlin", "in Berlin"),
}
INTRANSITIVE = [
    (("play", "plays"), ("spiele", "spielst", "spielt", "spielen"),
     ["park", "garden", "school", "home", "street"], True),
    (("sleep", "sleeps"), ("schlafe", "schläfst", "schläft", "schlafen"),
     ["bed", "hotel", "home", "garden", "park"], True),
    (("work", "works"), ("arbeite", "arbeitest", "arbeitet", "arbeiten"),
     ["office", "kitchen", "garden", "school", "city", "market", "library", "hotel", "berlin"],
     False),
    (("wait", "waits"), ("warte", "wartest", "wartet", "warten"),
     ["station", "park", "school", "street", "home", "hotel"], True),
    (("sing", "sings"), ("singe", "singst", "singt", "singen"),
     ["kitchen", "garden", "church", "park", "school"], False),
    (("dance", "dances"), ("tanze", "tanzt", "tanzt", "tanzen"),
     ["kitchen", "park", "garden", "street", "village"], False),
    (("swim", "swims"), ("schwimme", "schwimmst", "schwimmt", "schwimmen"),
     ["lake", "river", "sea"], True),
    (("run", "runs"), ("laufe", "läufst", "läuft", "laufen"),
     ["park", "forest", "garden", "street"], True),
    (("live", "lives"), ("wohne", "wohnst", "wohnt", "wohnen"),
     ["city", "village", "berlin"], False),
    (("read", "reads"), ("lese", "liest", "liest", "lesen"),
     ["library", "garden", "bed", "kitchen", "park"], False),
    (("eat", "eats"), ("esse", "isst", "isst", "essen"),
     ["kitchen", "garden", "hotel", "home"], True),
    (("laugh", "laughs"), ("lache", "lachst", "lacht", "lachen"), ["school", "kitchen"], False),
    (("cook", "cooks"), ("koche", "kochst", "kocht", "kochen"), ["kitchen", "hotel", "home"],
     False),
]
MANNER = [("loudly", "laut"), ("quietly", "leise"), ("well", "gut"), ("fast", "schnell"),
          ("slowly", "langsam"), ("happily", "fröhlich")]
FREQUENCY = [("often", "oft"), ("always", "immer"), ("sometimes", "manchmal"),
             ("never", "nie"), ("rarely", "selten")]
TIMES = [("today", "heute"), ("every day", "jeden Tag"), ("in the morning", "am Morgen"),
         ("in the evening", "am Abend"), ("now", "jetzt"), ("on Monday", "am Montag"),
         ("on Sunday", "am Sonntag"), ("at night", "in der Nacht"), ("on Friday", "am Freitag")]

# adjective: English, German stem, which nouns it suits
ADJ_PEOPLE = [("young", "jung"), ("old", "alt"), ("tired", "müde"), ("happy", "glücklich"),
              ("hungry", "hungrig"), ("friendly", "freundlich"), ("clever", "klug"),
              ("sad", "traurig"), ("tall", "groß"), ("sick", "krank")]
ADJ_ANIMALS = [("big", "groß"), ("small", "klein"), ("old", "alt"), ("young", "jung"),
               ("hungry", "hungrig"), ("black", "schwarz"), ("white", "weiß"), ("fast", "schnell"),
               ("tired", "müde"), ("brown", "braun")]
ADJ_THINGS = [("big", "groß"), ("small", "klein"), ("old", "alt"), ("new", "neu"),
              ("red", "rot"), ("blue", "blau"), ("green", "grün"), ("yellow", "gelb"),
              ("black", "schwarz"), ("white", "weiß"), ("beautiful", "schön"),
              ("cheap", "billig"), ("heavy", "schwer")]
ADJ_FOOD = [("fresh", "frisch"), ("hot", "heiß"), ("cold", "kalt"), ("sweet", "süß"),
            ("delicious", "lecker"), ("warm", "warm"), ("big", "groß"), ("small", "klein")]
ADJ_DRINKS = [("fresh", "frisch"), ("hot", "heiß"), ("cold", "kalt"), ("sweet", "süß"),
              ("delicious", "lecker"), ("warm", "warm")]
# only used after "is"/"are": inflected, these drop an -e- (teuer -> teure)
PREDICATE_ONLY = [("expensive", "teuer")]


def adjectives_for(noun: Noun) -> list[tuple[str, str]]:
    if noun in PEOPLE:
        return ADJ_PEOPLE
    if noun in ANIMAL_NOUNS:
        return ADJ_ANIMALS
    if noun in DRINKS:
        return ADJ_DRINKS
    if noun in FOOD:
        return ADJ_FOOD
    return ADJ_THINGS


DEF_ARTICLE = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
               "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"}}
# endings of ein-words (ein, kein, mein, unser ...) by case and gender
EIN_ENDING = {"nom": {"m": "", "f": "e", "n": "", "pl": "e"},
              "acc": {"m": "en", "f": "e", "n": "", "pl": "e"}}
# adjective endings after der-words (weak), after ein-words (mixed), with no article (strong)
WEAK_ADJ = {"nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
            "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"}}
MIXED_ADJ = {"nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},
             "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"}}
STRONG_ADJ = {"nom": {"m": "er", "f": "e", "n": "es", "pl": "e"},
              "acc": {"m": "en", "f": "e", "n": "es", "pl": "e"}}
POSSESSIVES = [("my", "mein"), ("your", "dein"), ("his", "sein"), ("her", "ihr"),
               ("our", "unser")]


def inflect(stem: str, ending: str) -> str:
    if stem.endswith("e") and ending.startswith("e"):
        return stem + ending[1:]  # müde + en -> müden
    return stem + ending


def noun_phrase(rng: random.Random, noun: Noun, case: str, plural: bool, determiner: str,
                adjective: tuple[str, str] | None) -> tuple[str, str]:
    """English and German noun phrase.

    determiner: "the", "a", "no" (German "kein"; no English article), "zero" (mass nouns and
    bare plurals) or "possessive" (my/mein, our/unser, ...).
    """
    gender = "pl" if plural else noun.gender
    en_noun = noun.en_pl if plural else noun.en
    de_noun = noun.de_pl if plural else noun.de
    en_adj, de_stem = adjective if adjective else ("", "")
    if determiner == "the":
        en_det, de_det, table = "the", DEF_ARTICLE[case][gender], WEAK_ADJ
    elif determiner == "a":
        en_det, de_det, table = a_or_an(en_adj or en_noun), "ein", MIXED_ADJ
        de_det += EIN_ENDING[case][gender]
    elif determiner == "no":
        en_det, de_det, table = "", "kein" + EIN_ENDING[case][gender], MIXED_ADJ
    elif determiner == "zero":
        en_det, de_det, table = "", "", STRONG_ADJ
    else:
        en_det, de_word = rng.choice(POSSESSIVES)
        de_det, table = de_word + EIN_ENDING[case][gender], MIXED_ADJ
    de_adj = inflect(de_stem, table[case][gender]) if adjective else ""
    en = " ".join(w for w in (en_det, en_adj, en_noun) if w)
    de = " ".join(w for w in (de_det, de_adj, de_noun) if w)
    return en, de


SUBJECT_PRONOUNS = [("I", "ich", 0), ("you", "du", 1), ("he", "er", 2), ("she", "sie", 2),
                    ("we", "wir", 3), ("they", "sie", 3)]
# "your woman" / "deine Frau" (= your wife): these people take no possessive
NO_POSSESSIVE = {"man", "woman", "girl", "cook", "baker", "waiter"}
# transitive verbs that an animal subject may take
ANIMAL_VERBS = {"see", "eat", "drink", "like", "find", "hear", "catch", "love"}


def subject(rng: random.Random, animals: bool = False) -> tuple[str, str, int]:
    """(English, German, person 0..3 indexing the verb tables), in the nominative."""
    if rng.random() < 0.35:
        return rng.choice(SUBJECT_PRONOUNS)
    noun = rng.choice(PEOPLE + ANIMAL_NOUNS if animals else PEOPLE)
    plural = rng.random() < 0.25
    determiner = rng.choice(["the", "the", "possessive"] if plural
                            else ["the", "the", "a", "possessive"])
    if determiner == "possessive" and noun.en in NO_POSSESSIVE:
        determiner = "the"
    adjective = rng.choice(adjectives_for(noun)) if rng.random() < 0.35 else None
    en, de = noun_phrase(rng, noun, "nom", plural, determiner, adjective)
    return en, de, 3 if plural else 2


def obj(rng: random.Random, noun: Noun, determiner: str | None = None) -> tuple[str, str]:
    """An accusative object. determiner=None picks one that suits the noun."""
    plural = not noun.mass and rng.random() < 0.2
    adjective = rng.choice(adjectives_for(noun)) if rng.random() < 0.3 else None
    if determiner == "no":  # "no" is said "not ... a X" / "not ... (any) Xs" in English
        en, de = noun_phrase(rng, noun, "acc", plural, "no", adjective)
        if noun.mass or plural:
            return rng.choice(["", "any "]) + en, de
        return f"{a_or_an(en)} {en}", de
    if determiner == "possessive" and noun.en in NO_POSSESSIVE:
        determiner = "the"
    if determiner is None:
        if noun.mass:
            determiner = rng.choice(["the", "the", "zero", "possessive"])
        elif plural:
            determiner = rng.choice(["the", "zero", "possessive"])
        else:
            determiner = rng.choice(["the", "a", "a", "possessive"])
    return noun_phrase(rng, noun, "acc", plural, determiner, adjective)


def en_verb(forms: tuple[str, str], person: int) -> str:
    return forms[1] if person == 2 else forms[0]


def transitive_pair(rng: random.Random, kind: str) -> tuple[str, str]:
    animals = rng.random() < 0.15
    s_en, s_de, person = subject(rng, animals)
    verbs = [v for v in TRANSITIVE if v[0][0] in ANIMAL_VERBS] if animals else TRANSITIVE
    en_forms, de_forms, objects = rng.choice(verbs)
    noun = rng.choice(objects)
    v_en, v_de = en_verb(en_forms, person), de_forms[person]
    do = "does" if person == 2 else "do"
    if kind == "negation":
        if rng.random() < 0.5:  # definite object: "nicht" at the end
            o_en, o_de = obj(rng, noun, rng.choice(["the", "possessive"]))
            return f"{s_en} {do} not {en_forms[0]} {o_en}.", f"{s_de} {v_de} {o_de} nicht."
        o_en, o_de = obj(rng, noun, "no")  # indefinite object: "kein"
        return f"{s_en} {do} not {en_forms[0]} {o_en}.", f"{s_de} {v_de} {o_de}."
    o_en, o_de = obj(rng, noun)
    if kind == "question":  # the verb comes first in German
        return f"{do} {s_en} {en_forms[0]} {o_en}?", f"{v_de} {s_de} {o_de}?"
    if kind == "time_first":  # verb second: the subject follows the verb
        t_en, t_de = rng.choice(TIMES)
        return f"{t_en} {s_en} {v_en} {o_en}.", f"{t_de} {v_de} {s_de} {o_de}."
    if kind == "and":  # two main clauses, both verb second
        s2_en, s2_de, person2 = subject(rng)
        en_forms2, de_forms2, objects2 = rng.choice(TRANSITIVE)
        o2_en, o2_de = obj(rng, rng.choice(objects2))
        return (f"{s_en} {v_en} {o_en} and {s2_en} {en_verb(en_forms2, person2)} {o2_en}.",
                f"{s_de} {v_de} {o_de} und {s2_de} {de_forms2[person2]} {o2_de}.")
    if rng.random() < 0.3:  # time phrase: at the end in English, before the object in German
        t_en, t_de = rng.choice(TIMES)
        return f"{s_en} {v_en} {o_en} {t_en}.", f"{s_de} {v_de} {t_de} {o_de}."
    return f"{s_en} {v_en} {o_en}.", f"{s_de} {v_de} {o_de}."


def intransitive_pair(rng: random.Random, kind: str) -> tuple[str, str]:
    en_forms, de_forms, places, animals_ok = rng.choice(INTRANSITIVE)
    s_en, s_de, person = subject(rng, animals=animals_ok)
    v_en, v_de = en_verb(en_forms, person), de_forms[person]
    p_en, p_de = PLACES[rng.choice(places)]
    if kind == "frequency":  # before the verb in English, after it in German
        f_en, f_de = rng.choice(FREQUENCY)
        return f"{s_en} {f_en} {v_en} {p_en}.", f"{s_de} {v_de} {f_de} {p_de}."
    roll = rng.random()
    if roll < 0.6:
        return f"{s_en} {v_en} {p_en}.", f"{s_de} {v_de} {p_de}."
    if roll < 0.8:
        m_en, m_de = rng.choice(MANNER)
        return f"{s_en} {v_en} {m_en}.", f"{s_de} {v_de} {m_de}."
    t_en, t_de = rng.choice(TIMES)
    return f"{s_en} {v_en} {p_en} {t_en}.", f"{s_de} {v_de} {t_de} {p_de}."


def copula_pair(rng: random.Random) -> tuple[str, str]:
    """"X is ADJ": predicate adjectives are not inflected in German."""
    if rng.random() < 0.5:
        s_en, s_de, person = subject(rng)
        be_en = ("am", "are", "is", "are")[person]
        be_de = ("bin", "bist", "ist", "sind")[person]
        a_en, a_de = rng.choice(ADJ_PEOPLE)
        if rng.random() < 0.2:
            return f"{s_en} {be_en} not {a_en}.", f"{s_de} {be_de} nicht {a_de}."
        return f"{s_en} {be_en} {a_en}.", f"{s_de} {be_de} {a_de}."
    noun = rng.choice(THINGS + FOOD + DRINKS)
    plural = not noun.mass and rng.random() < 0.3
    determiner = rng.choice(["the", "the", "possessive"])
    n_en, n_de = noun_phrase(rng, noun, "nom", plural, determiner, None)
    extra = PREDICATE_ONLY if noun in THINGS or noun in FOOD else []
    a_en, a_de = rng.choice(adjectives_for(noun) + extra)
    be_en, be_de = ("are", "sind") if plural else ("is", "ist")
    return f"{n_en} {be_en} {a_en}.", f"{n_de} {be_de} {a_de}."


def translation_pair(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(["transitive", "intransitive", "copula", "negation", "question",
                        "time_first", "frequency", "and"],
                       weights=[24, 14, 10, 10, 10, 10, 8, 6])[0]
    if kind in ("intransitive", "frequency"):
        en, de = intransitive_pair(rng, kind)
    elif kind == "copula":
        en, de = copula_pair(rng)
    else:
        en, de = transitive_pair(rng, kind)
    return capitalize(en), capitalize(de)


def make_translation(rng: random.Random) -> dict[str, list[dict]]:
    train, validation = unique_split(translation_pair, rng, 3000, 300, key=lambda pair: pair[0])
    return {split: [{"translation": {"en": en, "de": de}} for en, de in pairs]
            for split, pairs in (("train", train), ("validation", validation))}


# ---------------------------------------------------------------------------------- text
# Short fables (and a few diary entries) for causal language modelling: a small vocabulary
# and recurring story structure, so a tiny model trained from scratch learns quickly.

HEROES = ["fox", "rabbit", "bear", "mouse", "owl", "hedgehog", "duck", "squirrel", "badger",
          "frog", "goat", "cat", "wolf", "deer", "otter", "tortoise"]
HERO_NAMES = ["Pip", "Tilly", "Bruno", "Mo", "Hazel", "Finn", "Rosie", "Oscar", "Daisy",
              "Toby", "Lulu", "Ned", "Maple", "Bramble", "Olive", "Rufus", "Juniper", "Basil"]
TRAITS = ["curious", "shy", "brave", "clumsy", "kind", "proud", "lazy", "cheerful", "grumpy",
          "clever", "little", "old", "young", "gentle"]
HOMES = ["a cosy burrow under an oak tree", "a small house by the river",
         "a hollow log at the edge of the forest", "a nest high in a pine tree",
         "a cottage on the hill", "a muddy bank near the pond", "a barn behind the farm",
         "a cave beside the waterfall"]
HOBBIES = ["collecting shiny stones", "baking blueberry pies", "singing to the moon",
           "counting the stars", "reading old maps", "growing tomatoes", "building tiny boats",
           "painting the sunset", "telling jokes", "climbing trees", "fishing in the stream",
           "knitting warm scarves"]
ROUTINES = ["went for a walk along the river", "watered the flowers in the garden",
            "ate a big bowl of porridge", "swept the floor of the kitchen",
            "visited the old mill", "looked for berries in the forest",
            "said good morning to the neighbours", "did some stretches in the sun"]
PROBLEMS = ["a big storm had knocked down the bridge over the river",
            "the well in the village had run dry",
            "someone had taken all the apples from the orchard",
            "a little bird had fallen out of its nest",
            "the path to the market was blocked by a fallen tree",
            "the winter was coming and there was no food in the cupboard",
            "the lantern on the hill had gone out", "a thick fog had covered the whole valley",
            "the baker was ill and nobody had any bread",
            "the key to the school had been lost"]
FEELINGS = ["worried", "sad", "scared", "confused", "upset", "nervous", "lonely"]
HELPERS = [("Grandma Owl", "wisest"), ("Old Badger", "most patient"),
           ("Captain Heron", "bravest"), ("Aunt Mole", "cleverest"), ("Farmer Goat", "strongest"),
           ("Doctor Hedgehog", "kindest"), ("Mister Crow", "quickest"), ("Sister Swan", "calmest")]
ADVICE = ["Every big problem is made of small pieces.", "Friends are stronger together.",
          "Start with the first step and the rest will follow.",
          "Do not be afraid to ask for help.", "Patience is the best tool in the box.",
          "Listen carefully and you will find the answer.", "A kind heart is a strong heart."]
ACTIONS = ["gathered sticks and rope", "knocked on every door in the village",
           "searched the forest from morning until night", "drew a careful plan on the ground",
           "carried water from the lake in buckets", "asked the other animals for help",
           "followed the tracks in the snow", "worked hard all through the afternoon"]
ENDINGS = ["the bridge was stronger than ever before", "everyone had enough to eat",
           "the apples were found in the old barn", "the little bird was safe at home again",
           "the whole village came together for a big party", "the sun came out again",
           "the path was clear and the market was busy once more",
           "the lantern shone brightly over the valley"]
LESSONS = ["always helped the neighbours", "never gave up when things were hard",
           "shared everything with friends", "listened before speaking",
           "asked for help when it was needed", "was a little braver every day"]
WEATHER = ["sunny and warm", "cold and windy", "grey and rainy", "foggy in the morning",
           "bright but chilly", "snowy all day", "stormy in the evening", "hot and dry"]
ERRANDS = ["bought some bread and cheese at the market", "visited my grandmother",
           "cleaned the windows of the house", "walked the dog around the lake",
           "read a long book about ships", "cooked a big pot of soup",
           "fixed the fence in the garden", "wrote a letter to my cousin",
           "planted some onions and carrots", "took the train to the city"]
DIARY_MOODS = ["happy", "tired", "calm", "a little bored", "very proud", "sleepy", "excited"]


def story(rng: random.Random) -> list[str]:
    hero = rng.choice(HEROES)
    name = rng.choice(HERO_NAMES)
    trait = rng.choice(TRAITS)
    he, his = rng.choice([("he", "his"), ("she", "her")])
    helper, quality = rng.choice(HELPERS)
    feeling = rng.choice(FEELINGS)
    time = rng.choice(["morning", "afternoon", "evening", "day"])
    opening = rng.choice(["Once upon a time", "Long ago", "Not so long ago", "One year"])
    routine, routine2, routine3 = rng.sample(ROUTINES, 3)
    action, action2 = rng.sample(ACTIONS, 2)
    paragraphs = [
        f"{opening}, there was {a_or_an(trait)} {trait} {hero} named {name} who lived in "
        f"{rng.choice(HOMES)}. {name} loved {rng.choice(HOBBIES)} more than anything else in "
        f"the world. Every morning, {name} {routine} and then {routine2}.",
        f"One {time}, {name} found out that {rng.choice(PROBLEMS)}. {capitalize(he)} felt very "
        f"{feeling} and did not know what to do. \"What should I do now?\" {name} asked. "
        f"{capitalize(he)} sat down under a tree and thought for a long time.",
        f"So {name} went to see {helper}, who was the {quality} animal in the forest. "
        f"\"{rng.choice(ADVICE)[:-1]},\" said {helper}. {name} and {helper} {action}, "
        f"and then they {action2}.",
        f"In the end, {rng.choice(ENDINGS)}. {name} was not {feeling} any more. From that day "
        f"on, the {trait} {hero} {rng.choice(LESSONS)}, and {his} friends were very proud of "
        f"{'him' if he == 'he' else 'her'}.",
    ]
    if rng.random() < 0.5:
        paragraphs.insert(2, f"The next day, {name} {routine3}, but the problem was "
                             f"still there. \"I cannot do this alone,\" {he} said. \"I need a "
                             f"friend to help me.\"")
    return paragraphs


def diary(rng: random.Random, day: int) -> list[str]:
    first, second, third = rng.sample(ERRANDS, 3)
    return [
        f"Day {day}. Today the weather was {rng.choice(WEATHER)}. In the morning I {first}. "
        f"After lunch I {second}, and in the evening I {third}. I feel "
        f"{rng.choice(DIARY_MOODS)}. Tomorrow I want to go to bed early.",
    ]


def make_text(rng: random.Random) -> dict[str, str]:
    out = {}
    for split, target_bytes in (("train", 150_000), ("validation", 20_000)):
        paragraphs: list[str] = []
        size, day = 0, 1
        while size < target_bytes:
            if rng.random() < 0.2:
                new = diary(rng, day)
                day += 1
            else:
                new = story(rng)
            paragraphs += new
            size += sum(len(p.encode("utf-8")) + 2 for p in new)
        out[split] = "\n\n".join(paragraphs) + "\n"
    return out


# ----------------------------------------------------------------------------------- NER
# Newswire-like sentences from templates. Entity slots expand to tokens with IOB2 tags.

NER_FIRST = ["Anna", "Peter", "Maria", "John", "Fatima", "Kenji", "Lucia", "Omar", "Sarah",
             "David", "Ingrid", "Carlos", "Aisha", "Pierre", "Mei", "Ivan", "Grace", "Samuel",
             "Nadia", "Thomas", "Elif", "Jonas", "Priya", "Rafael", "Hannah", "Kwame", "Sofia",
             "Lars", "Yuki", "Marco"]
NER_LAST = ["Fischer", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Rossi", "Kowalski", "Haddad",
            "Novak", "Silva", "Brennan", "Schmidt", "Mendes", "Petrov", "Adeyemi", "Larsen",
            "Costa", "Nakamura", "Dubois", "Walsh", "Varga", "Ibrahim", "Hartmann", "Quinn",
            "Torres", "Berg", "Mwangi", "Castillo", "Keller", "Horvath"]
LOC_SINGLE = ["Berlin", "Lagos", "Oslo", "Kyoto", "Lisbon", "Nairobi", "Toronto", "Madrid",
              "Vienna", "Cairo", "Lima", "Dublin", "Prague", "Manila", "Stockholm", "Brazil",
              "Kenya", "Canada", "Norway", "Egypt", "Peru", "Portugal", "Europe", "Asia",
              "Africa", "Marseille", "Valdoria", "Ostrava", "Kelmar", "Bergen"]
LOC_MULTI = ["New York", "Buenos Aires", "Cape Town", "Hong Kong", "Los Angeles", "New Delhi",
             "Rio de Janeiro", "South Korea", "New Zealand", "the Netherlands", "Lake Geneva",
             "North Sea", "San Marino", "Kuala Lumpur", "Port Elsworth", "Silver Bay",
             "Mount Kelmar", "Saint Petersburg", "Abu Dhabi", "Tel Aviv"]
ORG_WORDS = ["Northwind", "Bluestone", "Meridian", "Harbor", "Summit", "Evergreen", "Atlas",
             "Crescent", "Pioneer", "Redwood", "Falcon", "Sterling"]
ORG_KINDS = ["Airlines", "Bank", "Energy", "Motors", "Foods", "Pharmaceuticals", "Media Group",
             "Insurance", "Telecom", "Capital Partners", "Shipping Company", "Steel Works"]
ORG_FIXED = ["the United Nations", "the European Union", "the World Health Organization",
             "the Red Cross", "the National Weather Service", "the Central Statistics Office",
             "the Supreme Court", "the Ministry of Finance", "the Olympic Committee",
             "Amnesty International", "Doctors Without Borders"]
NATIONALITIES = ["German", "French", "Brazilian", "Japanese", "Kenyan", "Canadian", "Italian",
                 "Norwegian", "Egyptian", "Mexican", "Polish", "Irish", "South African",
                 "South Korean", "New Zealand", "Dutch", "Spanish", "Chinese"]
EVENTS = ["World Cup", "Olympic Games", "Winter Olympics", "Tour de France", "Champions League",
          "Summer Jazz Festival", "World Book Fair", "Nobel Prize", "Grand Prix",
          "Film Festival", "Davis Cup"]
NER_TEMPLATES = [
    "{PER} , the {NAT} ambassador , arrived in {LOC} on {DAY} .",
    "{ORG} said on {DAY} that {PER} will lead its new office in {LOC} .",
    "The {EVENT} will take place in {LOC} next year .",
    "{PER} won the {EVENT} after a strong finish .",
    "Shares of {COMPANY} rose {NUM} percent on {DAY} .",
    "{PER} told reporters in {LOC} that the deal with {COMPANY} was close .",
    "Police in {LOC} said no one was injured in the fire .",
    "The {NAT} team beat {LOC} {NUM} - {NUM2} in the {EVENT} .",
    "{COMPANY} has agreed to buy {COMPANY2} for {NUM} million dollars .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "{PER} , a spokeswoman for {ORG} , said the report was wrong .",
    "Heavy rain closed several roads between {LOC} and {LOC2} on {DAY} .",
    "{NAT} officials met {PER} in {LOC} to discuss trade .",
    "The {NAT} government asked {ORG} for more help .",
    "{PER} was born in {LOC} and moved to {LOC2} in {YEAR} .",
    "Thousands of fans travelled to {LOC} for the {EVENT} .",
    "{COMPANY} opened a new factory near {LOC} .",
    "According to {ORG} , prices in {LOC} rose by {NUM} percent .",
    "{PER} and {PER2} will meet in {LOC} next week .",
    "Mr. {LAST} said the {NAT} economy would grow this year .",
    "Ms. {LAST} joined {ORG} in {YEAR} .",
    "The {EVENT} was cancelled because of the storm .",
    "{PER} scored twice as {LOC} won the match .",
    "{COMPANY} will cut {NUM} jobs in {LOC} .",
    "A {NAT} tourist was rescued near {LOC} on {DAY} .",
    "Flights from {LOC} to {LOC2} were delayed for hours .",
    "{PER} , who runs {COMPANY} , grew up in {LOC} .",
    "The {NAT} singer {PER} will perform at the {EVENT} .",
    "Officials from {ORG} visited {LOC} to inspect the damage .",
    "{PER} resigned from {ORG} on {DAY} .",
    "The weather in {LOC} will be sunny on {DAY} .",
    "Organisers expect {NUM} thousand visitors at the {EVENT} in {LOC} .",
    "{ORG} and {ORG2} signed an agreement in {LOC} .",
    "Coach {PER} praised the {NAT} players after the game .",
    "Prices fell sharply on {DAY} .",
    "{PER} said : \" We are very happy to be in {LOC} . \"",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def entity(rng: random.Random, slot: str) -> tuple[list[str], str]:
    """Tokens and entity type (or 'O') for one template slot."""
    base = slot.rstrip("2")
    if base == "PER":
        return [rng.choice(NER_FIRST), rng.choice(NER_LAST)], "PER"
    if base == "LAST":
        return [rng.choice(NER_LAST)], "PER"
    if base == "LOC":
        if rng.random() < 0.4:
            return rng.choice(LOC_MULTI).split(), "LOC"
        return [rng.choice(LOC_SINGLE)], "LOC"
    if base == "ORG":  # any organisation
        roll = rng.random()
        if roll < 0.4:
            return rng.choice(ORG_FIXED).split(), "ORG"
        if roll < 0.55:
            return ["the", "University", "of", rng.choice(LOC_SINGLE[:15])], "ORG"
        base = "COMPANY"
    if base == "COMPANY":
        if rng.random() < 0.15:
            return ["Bank", "of", rng.choice(LOC_SINGLE[:15])], "ORG"
        return [rng.choice(ORG_WORDS), *rng.choice(ORG_KINDS).split()], "ORG"
    if base == "NAT":
        return rng.choice(NATIONALITIES).split(), "MISC"
    if base == "EVENT":
        event = rng.choice(EVENTS)
        if rng.random() < 0.2:
            event = f"{rng.choice(LOC_SINGLE[:15])} Marathon"
        return event.split(), "MISC"
    if base == "DAY":
        return [rng.choice(DAYS)], "O"
    if base == "YEAR":
        return [str(rng.randint(1950, 2023))], "O"
    return [str(rng.randint(2, 95))], "O"  # NUM


def ner_sentence(rng: random.Random) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    tokens: list[str] = []
    tags: list[str] = []
    for piece in rng.choice(NER_TEMPLATES).split():
        if piece.startswith("{") and piece.endswith("}"):
            words, kind = entity(rng, piece[1:-1])
            if words[0] == "the":  # "the Netherlands": the article is outside the entity
                tokens.append("the")
                tags.append("O")
                words = words[1:]
            for i, word in enumerate(words):
                tokens.append(word)
                tags.append("O" if kind == "O" else f"{'B' if i == 0 else 'I'}-{kind}")
        else:
            tokens.append(piece)
            tags.append("O")
    for i in range(len(tokens) - 1):  # "A Irish tourist" -> "An Irish tourist"
        if tokens[i] in ("a", "A") and tokens[i + 1][:1] in "AEIOU":
            tokens[i] += "n"
    tokens[0] = capitalize(tokens[0])
    if not 5 <= len(tokens) <= 25:
        return None
    return tuple(tokens), tuple(tags)


def make_ner(rng: random.Random) -> dict[str, list[dict]]:
    train, validation = unique_split(lambda r: ner_sentence(r), rng, 1500, 300,
                                     key=lambda item: item[0])
    return {split: [{"tokens": list(t), "ner_tags": list(g)} for t, g in items]
            for split, items in (("train", train), ("validation", validation))}


# -------------------------------------------------------------------------------- README

README = """\
# Sample datasets

Small datasets bundled with runner so that every head can be trained and evaluated
without a download (`data=sample`, picked by `head.task`). All of them were generated for
this project by `scripts/make_sample_data.py` from its own templates and word lists,
with a fixed seed; no third-party data is included. Rerun the script to rebuild them.

**sentiment/** (head `seqcls`): {sentiment_train} train / {sentiment_validation} validation
rows of JSON lines `{{"text": ..., "label": "negative" | "positive"}}`, roughly balanced.
Short review-like sentences about films, restaurants, hotels, products, books, apps and
concerts, with intensifiers, negations ("not bad at all") and mixed-but-clear opinions.

**qa/** (head `qa`): SQuAD v1.1 JSON (`{{"version": "1.1", "data": [{{"title", "paragraphs":
[{{"context", "qas": [{{"id", "question", "answers": [{{"text", "answer_start"}}]}}]}}]}}]}}`)
with {qa_train} train / {qa_validation} validation questions over {qa_train_paragraphs} /
{qa_validation_paragraphs} encyclopedia-style paragraphs about fictional towns, people,
inventions, companies and islands. Answers are exact spans; validation paragraphs are about
different entities than the training ones.

**translation/** (head `seq2seq`): {translation_train} train / {translation_validation}
validation English-German pairs as JSON lines `{{"translation": {{"en": ..., "de": ...}}}}`,
from a small controlled grammar (present tense, accusative objects, negation, questions,
time-first word order) with a vocabulary of a few hundred words.

**text/** (head `causal_lm`): plain English prose, {text_train_kb} KB train /
{text_validation_kb} KB validation, one paragraph per line with blank lines between them:
short fables and diary entries with a small vocabulary and recurring structure.

**ner/** (head `tokencls`): {ner_train} train / {ner_validation} validation sentences as
JSON lines `{{"tokens": [...], "ner_tags": [...]}}` with IOB2 string tags (`O`, `B-`/`I-`
`PER`, `LOC`, `ORG`, `MISC`), newswire-like sentences with people, single- and multi-word
places, organisations, nationalities and events.
"""


# ---------------------------------------------------------------------------------- main


def main() -> None:
    sentiment = make_sentiment(random.Random(SEED))
    qa = make_qa(random.Random(SEED + 1))
    translation = make_translation(random.Random(SEED + 2))
    text = make_text(random.Random(SEED + 3))
    ner = make_ner(random.Random(SEED + 4))

    for split in ("train", "validation"):
        write_jsonl(OUT_DIR / "sentiment" / f"{split}.jsonl", sentiment[split])
        write_json(OUT_DIR / "qa" / f"{split}.json", qa[split])
        write_jsonl(OUT_DIR / "translation" / f"{split}.jsonl", translation[split])
        write_text(OUT_DIR / "text" / f"{split}.txt", text[split])
        write_jsonl(OUT_DIR / "ner" / f"{split}.jsonl", ner[split])

    def n_questions(document: dict) -> int:
        return sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])

    counts = {
        "sentiment_train": len(sentiment["train"]),
        "sentiment_validation": len(sentiment["validation"]),
        "qa_train": n_questions(qa["train"]), "qa_validation": n_questions(qa["validation"]),
        "qa_train_paragraphs": len(qa["train"]["data"]),
        "qa_validation_paragraphs": len(qa["validation"]["data"]),
        "translation_train": len(translation["train"]),
        "translation_validation": len(translation["validation"]),
        "text_train_kb": round(len(text["train"].encode("utf-8")) / 1000),
        "text_validation_kb": round(len(text["validation"].encode("utf-8")) / 1000),
        "ner_train": len(ner["train"]), "ner_validation": len(ner["validation"]),
    }
    paragraphs = README.format(**counts).split("\n\n")
    readme = "\n\n".join(p if p.startswith("#") else textwrap.fill(
        " ".join(p.split()), width=92, break_long_words=False, break_on_hyphens=False)
        for p in paragraphs)
    write_text(OUT_DIR / "README.md", readme.rstrip("\n") + "\n")
    print(f"wrote {OUT_DIR}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
