"""Sample data the project writes itself: a seeded, made-up product catalogue and, built on it,

* a continued-pretraining corpus (``corpus.jsonl``: one ``{"text": ...}`` a line) of product
  descriptions, reviews and Q&A text;
* ShopBench-format examples (``train.jsonl`` / ``test.jsonl``) of all six task types, split by
  *product*: no product of the held-out test split appears in any train example or in the corpus, and
  no prompt appears in both splits.

The tasks are templated so that a tiny model can learn them: answers are short and follow from what
the prompt shows (the category word is in the product title, the retrieval and ranking answers follow
from visible attributes, the NER entities appear verbatim in the text, the review sentiment follows
from its phrases).  Everything is a pure function of ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --------------------------------------------------------------------------- the catalogue

#: category -> (department, nouns used in titles, attributes that make sense)
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "headphones": ("Electronics", ("wireless headphones", "earbuds", "headset")),
    "speaker": ("Electronics", ("bluetooth speaker", "smart speaker")),
    "charger": ("Electronics", ("phone charger", "usb charger")),
    "kettle": ("Kitchen", ("electric kettle", "tea kettle")),
    "blender": ("Kitchen", ("blender", "smoothie blender")),
    "mug": ("Kitchen", ("coffee mug", "travel mug")),
    "sneakers": ("Shoes", ("running shoes", "sneakers")),
    "boots": ("Shoes", ("hiking boots", "rain boots")),
    "sandals": ("Shoes", ("sandals", "slides")),
    "backpack": ("Bags", ("backpack", "laptop backpack")),
    "tote": ("Bags", ("tote bag", "shopping bag")),
    "wallet": ("Bags", ("wallet", "card holder")),
    "lamp": ("Home", ("desk lamp", "floor lamp")),
    "pillow": ("Home", ("pillow", "cushion")),
    "blanket": ("Home", ("blanket", "throw blanket")),
    "yoga mat": ("Sports", ("yoga mat", "exercise mat")),
    "dumbbell": ("Sports", ("dumbbell", "kettlebell")),
    "bottle": ("Sports", ("water bottle", "sports bottle")),
}
DEPARTMENTS = ("Electronics", "Kitchen", "Shoes", "Bags", "Home", "Sports")
BRANDS = (
    "Norvik", "Talora", "Quenby", "Brisko", "Maleto", "Zentra", "Olvane", "Pexley", "Ruvio", "Kestra",
    "Lumina", "Vardo", "Corvel", "Sorrin", "Dalvik", "Empra", "Hollis", "Jovana", "Marlo", "Tessin",
)  # fmt: skip
COLORS = ("black", "white", "red", "blue", "green", "grey", "pink", "yellow")
MATERIALS = ("cotton", "steel", "plastic", "leather", "bamboo", "glass", "wool", "rubber")
FEATURES = (
    "waterproof", "lightweight", "foldable", "rechargeable", "eco friendly", "compact", "durable", "quiet",
)  # fmt: skip
SENTIMENTS = ("positive", "negative", "neutral")
_REVIEW_PHRASES = {
    "positive": (
        "I love it", "works great", "excellent quality", "highly recommend", "very happy with it",
        "five stars", "better than expected", "great value",
    ),
    "negative": (
        "broke after a week", "very disappointed", "poor quality", "would not buy again", "stopped working",
        "waste of money", "arrived damaged", "worse than expected",
    ),
    "neutral": (
        "it is okay", "does the job", "nothing special", "average quality", "as described",
        "fine for the price", "not bad not great", "it is acceptable",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Product:
    pid: int
    brand: str
    category: str
    noun: str
    color: str
    material: str
    feature: str
    price: int

    @property
    def department(self) -> str:
        return CATEGORIES[self.category][0]

    @property
    def title(self) -> str:
        return f"{self.brand} {self.feature} {self.color} {self.noun}"


def catalogue(seed: int = 0, n: int = 400) -> list[Product]:
    """``n`` distinct made-up products (distinct titles), deterministic in ``seed``."""
    rng = random.Random(f"catalogue-{seed}")
    out: list[Product] = []
    seen: set[str] = set()
    cats = list(CATEGORIES)
    while len(out) < n:
        cat = rng.choice(cats)
        p = Product(
            pid=len(out),
            brand=rng.choice(BRANDS),
            category=cat,
            noun=rng.choice(CATEGORIES[cat][1]),
            color=rng.choice(COLORS),
            material=rng.choice(MATERIALS),
            feature=rng.choice(FEATURES),
            price=rng.randrange(5, 300),
        )
        if p.title in seen:
            continue
        seen.add(p.title)
        out.append(p)
    return out


def split_products(products: list[Product], seed: int = 0, test_fraction: float = 0.25):
    """Disjoint (train, test) product lists."""
    rng = random.Random(f"split-{seed}")
    idx = list(range(len(products)))
    rng.shuffle(idx)
    n_test = int(len(products) * test_fraction)
    test = sorted(idx[:n_test])
    train = sorted(idx[n_test:])
    return [products[i] for i in train], [products[i] for i in test]


def review_text(p: Product, sentiment: str, rng: random.Random) -> str:
    a, b = rng.sample(_REVIEW_PHRASES[sentiment], 2)
    return f"{a.capitalize()}, {b}. This {p.color} {p.noun} from {p.brand}."


# --------------------------------------------------------------------------- the corpus


def corpus_texts(products: list[Product], seed: int = 0, per_product: int = 3) -> list[str]:
    """Product descriptions, reviews and Q&A text about ``products`` (deterministic in ``seed``)."""
    rng = random.Random(f"corpus-{seed}")
    texts = []
    for p in products:
        texts.append(
            f"{p.title}. The {p.brand} {p.noun} is a {p.feature} {p.noun} made of {p.material}, "
            f"in {p.color}. Department: {p.department}. Price: ${p.price}."
        )
        for _ in range(per_product - 1):
            kind = rng.randrange(3)
            if kind == 0:
                s = rng.choice(SENTIMENTS)
                texts.append(f"Review of {p.title}: {review_text(p, s, rng)} Sentiment: {s}.")
            elif kind == 1:
                texts.append(
                    f"Q: Is the {p.brand} {p.noun} {p.feature}? A: Yes, it is {p.feature} and made of {p.material}."
                )
            else:
                texts.append(
                    f"Q: What color is the {p.brand} {p.noun}? A: It is {p.color}. You can find it in {p.department}."
                )
    rng.shuffle(texts)
    return texts
