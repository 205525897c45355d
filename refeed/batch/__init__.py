"""The one batching and log-prob core under every loop, scorer and eval (``../shared/DESIGN.md``).

    encoded = encode_for(tokenizer, rows, objective, max_length)      # rows -> token ids  (encode.py)
    batch = collate(encoded, pad_id)                                   # -> padded tensors  (collate.py)
    lp = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])

``refeed.train`` (offline and online loops), ``refeed.rewards`` (reward-model and FLR scoring) and
``refeed.eval`` all go through these functions, so a token rule (EOS on answers, left truncation of
prompts, prompt shared across answers) holds everywhere or nowhere. This layer knows models and the
objectives' input types; it never imports train, rewards or eval.
"""

from refeed.batch.collate import collate, collate_shared, scatter_cached, shape_for_objective
from refeed.batch.encode import EncodedRow, check_columns, encode_for, encode_rows, required_columns
from refeed.batch.logprobs import CompletionLogps, SharedPromptLogps, completion_logps, shared_prompt_logps

__all__ = [
    "CompletionLogps",
    "EncodedRow",
    "SharedPromptLogps",
    "check_columns",
    "collate",
    "collate_shared",
    "completion_logps",
    "encode_for",
    "encode_rows",
    "required_columns",
    "scatter_cached",
    "shape_for_objective",
    "shared_prompt_logps",
]
