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
from pathlib import Path

from .io import Outputs
from .records import Record

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


# --------------------------------------------------------------------------- the six task types

TASK_NAMES = {
    "multiple-choice": "sample/mc_department",
    "retrieval": "sample/retrieval_query",
    "ranking": "sample/ranking_query",
    "named_entity_recognition": "sample/ner_brand_color",
    "generation": "sample/generation_title",
    "classification": "sample/classification_sentiment",
}
SAMPLE_TRACK = "sample"


def _record(task_type: str, prompt: str, truth, metric: str | None = None) -> dict:
    from .records import DEFAULT_METRIC

    row = {
        "input_field": prompt,
        "output_field": truth,
        "task_name": TASK_NAMES[task_type],
        "task_type": task_type,
        "metric": metric or DEFAULT_METRIC[task_type],
        "is_multiple_choice": task_type == "multiple-choice",
        "track": SAMPLE_TRACK,
    }
    Record.model_validate(row)  # every row the generator writes is a valid record
    return row


def _mc(p: Product, rng: random.Random) -> dict:
    # the store's six departments, always in the same order: the answer follows from the product word
    options = list(DEPARTMENTS)
    lines = "\n".join(f"{i}. {o}" for i, o in enumerate(options))
    prompt = f"Which department does this product belong to?\nProduct: {p.title}\n{lines}\nAnswer:\n"
    return _record("multiple-choice", prompt, options.index(p.department))


def _query_candidates(anchor: Product, pool: list[Product], n: int, rng: random.Random):
    """Candidates for a "<color> <category>" query: all pool products matching it (at most 3) plus
    distractors that share only the color or only the category, then random ones; shuffled."""
    match = [q for q in pool if q.category == anchor.category and q.color == anchor.color and q is not anchor]
    chosen = [anchor, *rng.sample(match, min(len(match), rng.randrange(0, 3)))]
    near = [q for q in pool if (q.category == anchor.category) != (q.color == anchor.color)]
    far = [q for q in pool if q.category != anchor.category and q.color != anchor.color]
    rng.shuffle(near)
    rng.shuffle(far)
    for q in near[: max(0, (n - len(chosen)) // 2)] + far:
        if len(chosen) >= n:
            break
        if q not in chosen:
            chosen.append(q)
    rng.shuffle(chosen)
    return chosen


def _relevance(anchor: Product, q: Product) -> float:
    if q.category == anchor.category and q.color == anchor.color:
        return 1.0
    if q.category == anchor.category:
        return 0.1
    if q.color == anchor.color:
        return 0.01
    return 0.0


def _search(p: Product, pool: list[Product], n: int, rng: random.Random) -> tuple[list[Product], str, str]:
    """``n`` candidate products for a search that ``p`` answers, the query, and the numbered list."""
    cands = _query_candidates(p, pool, n, rng)
    query = f"{p.color} {CATEGORIES[p.category][1][0]}"
    return cands, query, "\n".join(f"{i}. {q.title}" for i, q in enumerate(cands, 1))


def _retrieval(p: Product, pool: list[Product], rng: random.Random) -> dict:
    cands, query, lines = _search(p, pool, 6, rng)
    prompt = (
        f'A customer searches for "{query}". Which of the following products match the query?\n{lines}\n'
        "Answer with the numbers of at most 3 matching products, separated by commas.\nAnswer:\n"
    )
    truth = [i for i, q in enumerate(cands, 1) if _relevance(p, q) == 1.0]
    return _record("retrieval", prompt, truth)


def _ranking(p: Product, pool: list[Product], rng: random.Random) -> dict:
    cands, query, lines = _search(p, pool, 5, rng)
    prompt = (
        f'A customer searches for "{query}". Rank the following 5 products from the most to the least '
        f"relevant to the query.\n{lines}\nAnswer with the 5 product numbers, separated by commas.\nAnswer:\n"
    )
    return _record("ranking", prompt, [_relevance(p, q) for q in cands])


_NER_TEMPLATES = (
    "I bought the {color} {noun} from {brand} last month and {phrase}.",
    "{brand} makes this {feature} {noun} in {color}; {phrase}.",
    "My new {noun} by {brand} is {color} and {feature}, {phrase}.",
    "Looking for a {color} {noun}? The one from {brand} is {feature}.",
)


def _ner(p: Product, rng: random.Random) -> dict:
    s = rng.choice(SENTIMENTS)
    text = rng.choice(_NER_TEMPLATES).format(
        color=p.color, noun=p.noun, brand=p.brand, feature=p.feature, phrase=rng.choice(_REVIEW_PHRASES[s])
    )
    prompt = (
        "Extract the brand name and the color from the following product text. "
        f"Answer with a JSON list of strings, brand first.\nText: {text}\nAnswer:\n"
    )
    return _record("named_entity_recognition", prompt, [p.brand, p.color])


def _generation(p: Product, rng: random.Random) -> dict:
    fields = [("Brand", p.brand), ("Color", p.color), ("Feature", p.feature), ("Product", p.noun)]
    rng.shuffle(fields)
    lines = "\n".join(f"{k}: {v}" for k, v in fields)
    prompt = f"Write a short product title from these attributes, as brand, feature, color, product.\n{lines}\nTitle:\n"
    return _record("generation", prompt, p.title, metric="rougel")


def _classification(p: Product, rng: random.Random) -> dict:
    s = rng.choice(SENTIMENTS)
    prompt = (
        "Classify the sentiment of this customer review as positive, negative or neutral.\n"
        f"Review: {review_text(p, s, rng)}\nAnswer:\n"
    )
    return _record("classification", prompt, s)


def task_examples(products: list[Product], n_per_type: int, seed: int, split: str) -> list[dict]:
    """``n_per_type`` examples of each task type about ``products`` only (candidates too)."""
    rng = random.Random(f"tasks-{split}-{seed}")
    rows: list[dict] = []
    seen: set[str] = set()
    for ttype in TASK_NAMES:
        made, tries = 0, 0
        while made < n_per_type:
            tries += 1
            if tries > 50 * n_per_type:
                raise ValueError(f"cannot make {n_per_type} distinct {ttype} examples from {len(products)} products")
            p = rng.choice(products)
            if ttype == "multiple-choice":
                row = _mc(p, rng)
            elif ttype == "retrieval":
                row = _retrieval(p, products, rng)
            elif ttype == "ranking":
                row = _ranking(p, products, rng)
            elif ttype == "named_entity_recognition":
                row = _ner(p, rng)
            elif ttype == "generation":
                row = _generation(p, rng)
            else:
                row = _classification(p, rng)
            if row["input_field"] in seen:
                continue
            seen.add(row["input_field"])
            rows.append(row)
            made += 1
    return rows


def to_chat(row: dict) -> dict:
    """A ShopBench row → an axolotl chat row: the protocol's system text, the prompt, and the answer in
    exactly the format the official parser reads."""
    from .prompts import SYSTEM_PROMPT, format_answer

    rec = Record.model_validate(row)
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": rec.input_field},
            {"role": "assistant", "content": format_answer(rec)},
        ]
    }


#: demo sizes; ``small`` is the shortened end-to-end test
PRESETS = {
    "demo": dict(n_products=400, n_train=200, n_test=50),
    "small": dict(n_products=160, n_train=40, n_test=12),
}


def build_sample_data(out_dir: str | Path, seed: int = 0, preset: str = "demo", **sizes) -> dict:
    """Write ``corpus.jsonl``, ``train.jsonl``, ``test.jsonl`` (ShopBench JSON Lines), ``sft_train.jsonl``
    (chat rows for axolotl) and ``sample_data.json`` (counts, seed) into ``out_dir``."""
    cfg = {**PRESETS[preset], **sizes}
    out = Path(out_dir)
    products = catalogue(seed, cfg["n_products"])
    train_p, test_p = split_products(products, seed)
    corpus = corpus_texts(train_p, seed)
    train = task_examples(train_p, cfg["n_train"], seed, "train")
    test = task_examples(test_p, cfg["n_test"], seed, "test")
    overlap = {r["input_field"] for r in train} & {r["input_field"] for r in test}
    if overlap:  # cannot happen: products are disjoint and every prompt names its products
        raise AssertionError(f"{len(overlap)} prompts in both splits")
    info = {
        "seed": seed,
        "preset": preset,
        **cfg,
        "train_products": len(train_p),
        "test_products": len(test_p),
        "corpus": len(corpus),
        "train": len(train),
        "test": len(test),
        "task_names": TASK_NAMES,
    }
    names = ("corpus", "train", "test", "sft_train", "sample_data")
    with Outputs(**{n: out / f"{n}.{'json' if n == 'sample_data' else 'jsonl'}" for n in names}) as o:
        o.write_jsonl("corpus", ({"text": t} for t in corpus))
        o.write_jsonl("train", train)
        o.write_jsonl("test", test)
        o.write_jsonl("sft_train", (to_chat(r) for r in train))
        o.write_json("sample_data", info)
    return info
