"""``shop-eval synth``: synthetic ShopBench training data from any OpenAI-compatible endpoint.

Self-Instruct style: each request shows the model a few seed examples of one task type (rendered with the
task type's prompt template, ``shop_eval/templates/synth_<type>.txt``) and asks for ``--per-request`` new
ones; the reply is split on the separator line (``###``) and every block becomes a
:class:`~shop_eval.records.Record` or is rejected and counted by reason.  Accepted items also pass a
near-duplicate filter (ROUGE-L F > 0.7 with the pool of seeds and accepted items) and decontamination against
``--eval-set`` files.  The output is append-only and resumable: nothing lost, nothing duplicated after a crash
or ``kill -9``.  docs/synth.md has the details.

The package, by concern:

===============  ================================================================================
``options``      :class:`SynthOptions`, the one declaration of the options (library and flags)
``prompts``      templates and their rendering
``parse``        a reply → records, or rejection reasons
``dedupe``       the near-duplicate pool (MinHash LSH candidates, ROUGE-L decisions)
``store``        the append-only JSON Lines files, their recovery after a crash, the lock, item ids
``client``       the chat-completions call: retries, rate limits, error classes
``redact``       the API key scrubbed from every text that leaves the process
``progress``     the progress bar / periodic log line
``run``          :class:`Synthesizer`: ``setup()`` / ``run()`` / ``close()``; :func:`synthesize`
===============  ================================================================================

The command line (:mod:`shop_eval.cli.synth`) builds its flags from :class:`SynthOptions` and calls
:class:`Synthesizer`.
"""

from __future__ import annotations

from .client import BadResponse, Fatal, read_completion, retry_after_seconds, retry_cause
from .dedupe import ROUGE_THRESHOLD, NearDupIndex, RougeTokenizer
from .options import SynthOptions, parse_task_types, resolve_templates
from .parse import (
    R_CONTAMINATED,
    R_DUPLICATE,
    R_EMPTY_INPUT,
    R_EMPTY_OUTPUT,
    R_EMPTY_RESPONSE,
    R_INVALID_OUTPUT,
    R_NEAR_DUPLICATE,
    R_NO_MARKERS,
    R_OUT_OF_RANGE,
    R_REQUEST_FAILED,
    R_SURPLUS,
    R_TRUNCATED,
    Rejected,
    parse_block,
    parse_reply,
    split_blocks,
)
from .prompts import SEPARATOR, load_template, render_example, render_prompt, template_path
from .redact import Redactor, redact_url
from .run import Synthesizer, split_count, synthesize
from .store import ID_RE, JsonlAppender, config_id, item_id, recover_jsonl

__all__ = [
    "BadResponse", "Fatal", "read_completion", "retry_after_seconds", "retry_cause",
    "ROUGE_THRESHOLD", "NearDupIndex", "RougeTokenizer",
    "SynthOptions", "parse_task_types", "resolve_templates",
    "R_CONTAMINATED", "R_DUPLICATE", "R_EMPTY_INPUT", "R_EMPTY_OUTPUT", "R_EMPTY_RESPONSE", "R_INVALID_OUTPUT",
    "R_NEAR_DUPLICATE", "R_NO_MARKERS", "R_OUT_OF_RANGE", "R_REQUEST_FAILED", "R_SURPLUS", "R_TRUNCATED",
    "Rejected", "parse_block", "parse_reply", "split_blocks",
    "SEPARATOR", "load_template", "render_example", "render_prompt", "template_path",
    "Redactor", "redact_url",
    "Synthesizer", "split_count", "synthesize",
    "ID_RE", "JsonlAppender", "config_id", "item_id", "recover_jsonl",
]  # fmt: skip
