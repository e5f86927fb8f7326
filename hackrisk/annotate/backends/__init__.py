"""Backends: local ``transformers`` models and OpenAI-compatible HTTP servers.

A backend has an ``identity`` string (model + weights revision, part of the cache key) and

* ``score(messages_list, keys, *, sentinel=None) -> ndarray (n, K)``: log-probability of each
  answer key as the reply (``-inf`` where unknown);
* ``generate(messages_list, *, temperature, max_new_tokens, seed) -> list[str]``;
* ``prepare_texts(texts, messages_fn) -> (texts, truncated)``: fit texts into the context.
"""
