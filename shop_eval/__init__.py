"""shop-eval: fine-tune LLMs for online shopping and score them on the ShopBench protocol."""

__version__ = "0.1.0"
