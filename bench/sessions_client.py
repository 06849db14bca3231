"""A second client for the sessions workload, written apart from ``vllama bench`` (its own texts,
the official ``openai`` client, its own timing), to confirm what ``vllama bench --workload
sessions`` measures on any OpenAI-compatible server.

    .venv/bin/python bench/sessions_client.py --url http://127.0.0.1:11434/v1 --model MODEL \\
        [--users 32] [--turns 5] [--think-time 1] [--max-tokens 32] [--in-flight 8] [--seed 1]

Every user holds a conversation: a shared system prompt (about 250 words), then a question of its
own, then turn after turn the whole history (with the replies received) and a new question,
``--think-time`` seconds after each reply. At most ``--in-flight`` requests are sent at once.
Replies stream with ``ignore_eos``, so each has ``--max-tokens`` tokens. Prints the time to
first token (p50, p99) and the aggregate tokens per second, overall and per turn, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass

import openai

_WORDS = (
    "harbor lantern meadow copper violin glacier orchard pepper canyon ribbon falcon marble thunder velvet "
    "compass saddle blossom quarry anchor tundra walnut ember pebble lagoon thistle beacon cedar prairie"
).split()


def system_prompt(rng: random.Random) -> str:
    sentences = [" ".join(rng.choice(_WORDS) for _ in range(12)).capitalize() + "." for _ in range(20)]
    return "You are the assistant of a small travel agency. Keep these notes in mind: " + " ".join(sentences)


def question(rng: random.Random, user: int, turn: int) -> str:
    topic = " ".join(rng.choice(_WORDS) for _ in range(6))
    return f"Traveller {user}, message {turn}: tell me about {topic}."


@dataclass
class Timing:
    turn: int
    ttft: float
    tokens: int
    sent: float
    done: float


async def converse(
    client: openai.AsyncOpenAI, args: argparse.Namespace, user: int, system: str, gate: asyncio.Semaphore, out: list[Timing]
) -> None:
    rng = random.Random(args.seed * 1000 + user)
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    await asyncio.sleep(args.think_time * user / args.users)
    for turn in range(1, args.turns + 1):
        messages.append({"role": "user", "content": question(rng, user, turn)})
        async with gate:
            sent = time.perf_counter()
            first = None
            parts: list[str] = []
            stream = await client.chat.completions.create(
                model=args.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=args.max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            )
            tokens = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    parts.append(chunk.choices[0].delta.content)
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            done = time.perf_counter()
        out.append(Timing(turn, (first or done) - sent, tokens, sent, done))
        messages.append({"role": "assistant", "content": "".join(parts)})
        await asyncio.sleep(args.think_time)


def summary(timings: list[Timing]) -> dict[str, float]:
    ttfts = sorted(t.ttft for t in timings)
    span = max(t.done for t in timings) - min(t.sent for t in timings)
    return {
        "requests": len(timings),
        "tokens_per_s": round(sum(t.tokens for t in timings) / span, 2),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000),
        "ttft_p99_ms": round(ttfts[min(len(ttfts) - 1, round(0.99 * (len(ttfts) - 1)))] * 1000),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server's OpenAI base URL, ending in /v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--think-time", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    client = openai.AsyncOpenAI(base_url=args.url, api_key="unused", timeout=1800, max_retries=0)
    system = system_prompt(random.Random(args.seed))
    gate = asyncio.Semaphore(args.in_flight)
    timings: list[Timing] = []
    await asyncio.gather(*(converse(client, args, user, system, gate, timings) for user in range(args.users)))
    result = {"url": args.url, "all": summary(timings)}
    for turn in range(1, args.turns + 1):
        result[f"turn {turn}"] = summary([t for t in timings if t.turn == turn])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
