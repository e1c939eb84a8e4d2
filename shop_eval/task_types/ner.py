"""Named entity recognition: the truth is a list of entity strings."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from . import Extraction, TaskType, _text, register


@register
class NamedEntityRecognition(TaskType):
    name = "named_entity_recognition"
    short = "ner"
    label = "NER"
    aliases = ("named entity recognition", "named-entity-recognition")
    metrics = ("micro f1",)
    default_metric = "micro f1"
    empty = []
    flexible_nfkc = False

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if not isinstance(truth, list) or not all(isinstance(x, str) for x in truth):
            return f"expected a list of str, got {truth!r:.60}"
        return None

    def format_answer(self, truth: Any) -> str:
        return json.dumps(truth, ensure_ascii=False)  # a valid Python literal: commas inside entities survive

    def truth_from_text(self, text: str, prompt: str | None = None) -> list[str]:
        """The official parser's reading of the text: exactly what it will read from the same answer."""
        return self.official(text)

    def official(self, response: str) -> list[str]:
        try:
            parsed = ast.literal_eval(response)
        except BaseException as exc:  # SyntaxError, ValueError, MemoryError, RecursionError, TypeError ...
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
        return [piece.strip() for piece in response.split(",") if piece.strip()]

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        seg = _text.answer_segment(text)
        lit = _text.literal_list(seg) or _text.literal_list(text)
        ents: list[str] = []
        if lit is not None and all(isinstance(x, str) for x in lit):
            ents = [x.strip() for x in lit]
        else:
            quoted = re.findall(r"[\"“]([^\"“”\n]{1,200})[\"”]", seg)
            lines = [ln for ln in seg.split("\n") if ln.strip()]
            bullets = [b.group(1) for b in (_text.BULLET.match(ln) for ln in lines) if b]
            if len(bullets) >= 2:
                ents = [_text.strip_quotes(b) for b in bullets]
            elif quoted:
                ents = [_text.strip_quotes(q) for q in quoted]
            elif lines:
                ents = [_text.strip_quotes(p) for p in lines[0].split(",")]
        ents = _text.dedupe([e for e in ents if e and e.lower() not in ("none", "n/a")])
        return Extraction(ents, not ents)

    def shoppingmmlu(self, response: str) -> Extraction:
        """Leading newlines off, the first line, spaces stripped, split on ``,``; pieces that are exactly
        empty dropped (before stripping: ``" "`` survives); no list-literal reading."""
        g = response.lstrip("\n").split("\n")[0].lstrip(" ").rstrip(" ")
        ents = [a for a in g.split(",") if a != ""]
        return Extraction(ents, not ents)
