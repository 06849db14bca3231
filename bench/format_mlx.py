"""Per-token cost of structured output (``format``) for the MLX backend: llguidance, xgrammar and outlines-core.

    .venv/bin/python bench/format_mlx.py [--model smollm2|qwen-coder|all] [--rounds 5] [--engine 0]

For each library, on the same model vocabulary (the real test models' tokenizers) and the same JSON schema:

  setup     the library's view of the vocabulary, built once per model load
  compile   the schema to a matcher ready for the first mask (what each request pays before its first token;
            xgrammar can cache a compiled schema, so a schema sent again pays nothing here)
  us/token  one step of a constrained sequence: advance the matcher by the token just sampled and compute the
            mask of allowed next tokens (as a packed bitmask), averaged over the tokens of a valid reply
            (``json.dumps`` of a document that matches the schema, tokenized by the model's tokenizer)
  reply     the request's whole cost per token of that reply: (compile + every step) / tokens
  json      the same for ``format: "json"`` (any JSON object)

and, once, the cost all three would share on MLX: the packed bitmask applied to a row of logits on the CPU
(``vllama_mlx.output_format.apply_bitmask``); then vllama's whole per-token step with the chosen library
(``FormatMask``: advance, mask, apply, as mlx-lm calls it). Each figure is the median over ``--rounds``
rounds (a fresh matcher each round). Nothing runs a model there: the figures are the grammar's cost on top
of a decode step.

``--engine N`` then loads SmolLM2 with the MLX backend (one thread, parallel 1) and runs N rounds of the same
greedy request (``num_predict`` 48, a prompt that asks for a long JSON list) without and with ``format: "json"``,
reporting each one's decode time per token from the engine's own Done event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "email": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["street", "city"],
        },
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "address", "active"],
}
DOCUMENT = {
    "name": "Ada Lovelace",
    "age": 36,
    "email": "ada@example.org",
    "tags": ["mathematics", "computing", "poetry"],
    "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH"},
    "active": True,
}

Step = Callable[[int], None]
#: A library's run: (setup s, compile s, a fresh matcher's step function and mask function)
Candidate = Callable[[Any, int, bool], tuple[float, float, Callable[[], tuple[Callable[[], None], Step]]]]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def llguidance_run(tokenizer: Any, n_vocab: int, any_json: bool) -> tuple[float, float, Callable[[], tuple[Any, Step]]]:
    import llguidance
    import llguidance.hf
    import numpy as np
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

    setup, lltok = timed(lambda: llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab))
    schema = {"type": "object"} if any_json else SCHEMA
    compile_s, grammar = timed(lambda: llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema)))
    mask = allocate_token_bitmask(1, n_vocab)

    def fresh() -> tuple[Any, Step]:
        matcher = llguidance.LLMatcher(lltok, grammar)
        assert not matcher.is_error(), matcher.get_error()

        def compute() -> None:
            fill_next_token_bitmask(matcher, mask)

        def step(token: int) -> None:
            assert matcher.consume_token(token), matcher.get_error()

        return compute, step

    del np
    return setup, compile_s, fresh


def xgrammar_run(tokenizer: Any, n_vocab: int, any_json: bool) -> tuple[float, float, Callable[[], tuple[Any, Step]]]:
    import xgrammar as xgr

    def prepare() -> Any:
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=n_vocab)
        return xgr.GrammarCompiler(info, cache_enabled=False)

    setup, compiler = timed(prepare)
    compile_s, compiled = timed(lambda: compiler.compile_builtin_json_grammar() if any_json else compiler.compile_json_schema(SCHEMA))
    mask = xgr.allocate_token_bitmask(1, n_vocab)

    def fresh() -> tuple[Any, Step]:
        matcher = xgr.GrammarMatcher(compiled)

        def compute() -> None:
            matcher.fill_next_token_bitmask(mask)

        def step(token: int) -> None:
            assert matcher.accept_token(token)

        return compute, step

    return setup, compile_s, fresh


def outlines_run(tokenizer: Any, n_vocab: int, any_json: bool) -> tuple[float, float, Callable[[], tuple[Any, Step]]]:
    import numpy as np
    import outlines_core as oc
    from outlines_core.json_schema import build_regex_from_schema

    setup, vocabulary = timed(lambda: oc.Vocabulary(tokenizer.eos_token_id, _byte_vocabulary(tokenizer)))
    # outlines-core has no grammar for arbitrary JSON: an object whose values nest a bounded depth.
    schema = {"type": "object"} if any_json else SCHEMA
    compile_s, index = timed(lambda: oc.Index(build_regex_from_schema(json.dumps(schema)), vocabulary))
    mask = np.full(((n_vocab + 31) // 32,), -1, dtype=np.int32)

    def fresh() -> tuple[Any, Step]:
        guide = oc.Guide(index)

        def compute() -> None:
            guide.write_mask_into(mask.ctypes.data, mask.size, mask.itemsize)

        def step(token: int) -> None:
            guide.advance(token)

        return compute, step

    return setup, compile_s, fresh


def _byte_vocabulary(tokenizer: Any) -> dict[bytes, list[int]]:
    """Each token's bytes (byte-level BPE, as GPT-2, SmolLM2 and Qwen tokenize), special tokens left out."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_byte = {v: k for k, v in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_tokens)
    vocab: dict[bytes, list[int]] = {}
    for token, tid in tokenizer.get_vocab().items():
        if token in special or not all(c in to_byte for c in token):
            continue
        vocab.setdefault(bytes(to_byte[c] for c in token), []).append(tid)
    return vocab


CANDIDATES = {"llguidance": llguidance_run, "xgrammar": xgrammar_run, "outlines-core": outlines_run}


def per_token(fresh: Callable[[], tuple[Callable[[], None], Step]], tokens: list[int], rounds: int) -> tuple[float, float]:
    """Median seconds to make a matcher, and per token of mask + advance over ``tokens``."""
    made, steps = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        compute, step = fresh()
        t1 = time.perf_counter()
        for token in tokens:
            compute()
            step(token)
        compute()
        made.append(t1 - t0)
        steps.append((time.perf_counter() - t1) / (len(tokens) + 1))
    return statistics.median(made), statistics.median(steps)


def apply_cost(n_vocab: int, rounds: int) -> float:
    """Seconds to apply a packed bitmask to one row of bf16 logits with MLX on the CPU."""
    import mlx.core as mx
    import numpy as np

    from vllama_mlx.output_format import apply_bitmask

    mx.set_default_device(mx.cpu)
    logits = mx.random.normal((1, n_vocab)).astype(mx.bfloat16)
    mx.eval(logits)
    packed = np.full((1, (n_vocab + 31) // 32), 0x55555555, dtype=np.int32)
    times = []
    for _ in range(rounds * 20):
        t0 = time.perf_counter()
        mx.eval(apply_bitmask(logits, packed))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def engine_cost(path: Path, n_vocab: int, tokens: list[int], rounds: int) -> float:
    """Seconds per token of vllama's FormatMask (the chosen library), called as mlx-lm calls it."""
    import mlx.core as mx
    from mlx_lm.tokenizer_utils import load

    from vllama_mlx.output_format import FormatCompiler

    compiler = FormatCompiler(load(path), n_vocab)
    logits = mx.random.normal((1, n_vocab)).astype(mx.bfloat16)
    prompt = [1, 2, 3]
    context = mx.array(prompt + tokens)
    mx.eval(logits, context)
    times = []
    for _ in range(rounds):
        mask = compiler.mask(SCHEMA)
        t0 = time.perf_counter()
        for i in range(len(tokens) + 1):
            mx.eval(mask(context[: len(prompt) + i], logits))
        times.append((time.perf_counter() - t0) / (len(tokens) + 1))
    return statistics.median(times)


def engine_rounds(rounds: int) -> None:
    """Decode ms/token of the MLX engine without and with ``format: "json"`` (SmolLM2, greedy)."""
    import asyncio

    from vllama.store.describe import describe_directory
    from vllama.testing.hf_models import smollm2_safetensors
    from vllama.types import Done, GenerateRequest, Hardware, LoadSettings, ModelRef, SamplingOptions
    from vllama_mlx.backend import MlxBackend

    path = smollm2_safetensors()
    desc = describe_directory(path)
    ref = ModelRef(name="smollm2", format=desc.format, path=str(path), details=desc.details, info=desc.info, template=desc.template)
    prompt = "Write a JSON list of twenty animals, each with a name, a species and an age."

    async def run() -> None:
        engine = await MlxBackend.load(ref, Hardware(), LoadSettings(num_ctx=1024, parallel=1))
        print(f"\nengine: SmolLM2 on MLX, greedy, num_predict 48, {rounds} rounds: decode ms/token")
        for _ in range(rounds):
            row = []
            for fmt in (None, "json"):
                request = GenerateRequest(prompt=prompt, format=fmt, options=SamplingOptions(temperature=0, num_predict=48))
                done = [e async for e in engine.generate(request) if isinstance(e, Done)][-1]
                row.append(
                    f"{'json' if fmt else 'none'} {done.eval_ns / 1e6 / max(1, done.completion_tokens - 1):7.1f} ({done.completion_tokens} tokens)"
                )
            print("  " + "   ".join(row))
        await engine.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["smollm2", "qwen-coder", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", type=int, default=0, help="rounds of the engine comparison (0: none)")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from vllama.testing.hf_models import qwen_coder_safetensors, smollm2_safetensors

    models: dict[str, Callable[[], Path]] = {"smollm2": smollm2_safetensors, "qwen-coder": qwen_coder_safetensors}
    names = list(models) if args.model == "all" else [args.model]
    text = json.dumps(DOCUMENT)
    for name in names:
        path = models[name]()
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        config = json.loads((path / "config.json").read_text())
        n_vocab = int(config.get("vocab_size") or len(tokenizer))
        tokens = tokenizer.encode(text, add_special_tokens=False)
        print(f"\n{name}: vocabulary {len(tokenizer)} tokens (logits {n_vocab}); reply of {len(tokens)} tokens; rounds {args.rounds}")
        head = f"{'compile ms':>11} {'us/token':>9} {'reply us/tok':>12}"
        print(f"  {'library':<14} {'setup ms':>9} schema: {head}   json: {head}")
        n = len(tokens) + 1
        for lib, run in CANDIDATES.items():
            row = []
            try:
                for any_json in (False, True):
                    setup, compile_s, fresh = run(tokenizer, n_vocab, any_json)
                    made, step = per_token(fresh, tokens, args.rounds)
                    compiled = compile_s + made
                    row.append(f"{compiled * 1e3:11.1f} {step * 1e6:9.1f} {(compiled + step * n) / n * 1e6:12.1f}")
            except Exception as e:  # a library that cannot run this schema is reported, not fatal
                print(f"  {lib:<14} failed: {type(e).__name__}: {str(e)[:200]}")
                continue
            print(f"  {lib:<14} {setup * 1e3:9.0f}         {row[0]}         {row[1]}")
        print(f"  bitmask applied to the logits (apply_bitmask, CPU): {apply_cost(n_vocab, args.rounds) * 1e6:.0f} us/token")
        print(
            f"  vllama's FormatMask (llguidance: advance, mask, apply): {engine_cost(path, n_vocab, tokens, args.rounds) * 1e6:.0f} us/token"
        )
    if args.engine:
        engine_rounds(args.engine)


if __name__ == "__main__":
    main()
