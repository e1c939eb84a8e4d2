"""Wiring for the shop_* / shopmmlu_* tasks: every function comes from shop_eval.lm_eval_bridge (one definition
of each loader, parser and metric, shared with `shop-eval score`).  Only the default data path is set here,
relative to this folder, so the tasks work from any working directory."""

from pathlib import Path

from shop_eval import lm_eval_bridge as _bridge

SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "sample.jsonl"


def load_dataset(**kwargs):
    """custom_dataset (shop_*): the sample, or $SHOP_EVAL_DATA / --metadata '{"data": PATH}'."""
    return _bridge.load_dataset(default_data=SAMPLE_DATA, **kwargs)


def load_shopmmlu(**kwargs):
    """custom_dataset (shopmmlu_*): the Shopping MMLU data/ folder in $SHOPMMLU_DATA / --metadata data."""
    return _bridge.load_dataset(default_data=None, env=_bridge.SHOPMMLU_ENV, **kwargs)


doc_to_text = _bridge.doc_to_text
doc_to_target = _bridge.doc_to_target
doc_to_choice = _bridge.doc_to_choice
doc_to_choice_target = _bridge.doc_to_choice_target
official_filter = _bridge.official_filter
flexible_filter = _bridge.flexible_filter
shoppingmmlu_filter = _bridge.shoppingmmlu_filter
process_results = _bridge.process_results
process_results_ll = _bridge.process_results_ll
agg_score = _bridge.agg_score
agg_parse_failure = _bridge.agg_parse_failure
