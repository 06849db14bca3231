"""``vllama bench``: measure a server that speaks Ollama's or OpenAI's API, or two side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from vllama.cli.main import cli

APIS = click.Choice(["ollama", "openai"])
#: The workloads' names, as vllama.bench.workload.KINDS has them (not imported: the module loads with --help).
WORKLOADS = click.Choice(["plain", "sessions", "shared-prefix", "rag"])


def _levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter("use positive integers separated by commas, e.g. 1,8,32") from None
    if not levels or min(levels) < 1:
        raise click.BadParameter("use positive integers separated by commas, e.g. 1,8,32")
    return levels


@cli.command()
@click.argument("model")
@click.option("--url", help="Server to measure (default VLLAMA_HOST or OLLAMA_HOST, else http://127.0.0.1:11434).")
@click.option("--api", type=APIS, default="ollama", show_default=True, help="The API to drive: /api/chat or /v1/chat/completions.")
@click.option("--name", help="The server's name in the results (default host:port).")
@click.option("--against", "against_url", metavar="URL", help="A second server, run level by level beside the first.")
@click.option("--against-api", type=APIS, help="The second server's API (default --api).")
@click.option("--against-model", help="The second server's model name (default MODEL).")
@click.option("--against-name", help="The second server's name in the results (default host:port).")
@click.option("-c", "--concurrency", default="1,8,32", show_default=True, callback=_levels, help="Concurrency levels; 1 is sequential.")
@click.option(
    "-n",
    "--requests",
    type=click.IntRange(min=1),
    help="Requests per level (default twice the concurrency, at least 4; sessions: users × turns).",
)
@click.option(
    "--workload",
    type=WORKLOADS,
    default="plain",
    show_default=True,
    help="What to send: plain (numbered copies of --prompt), sessions (multi-turn conversations), "
    "shared-prefix (one long system prompt and tools before short questions) or rag (long contexts, short answers).",
)
@click.option("--users", type=click.IntRange(min=1), default=16, show_default=True, help="sessions: conversations at once.")
@click.option("--turns", type=click.IntRange(min=1), default=3, show_default=True, help="sessions: requests per conversation.")
@click.option(
    "--think-time",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="sessions: between a reply and the user's next message.",
)
@click.option(
    "--prefix-tokens",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="shared-prefix: the system prompt's length, estimated as words × 1.2.",
)
@click.option(
    "--tools/--no-tools",
    default=True,
    show_default=True,
    help="shared-prefix: send the tool definitions with every request (--no-tools for a model without tool calling).",
)
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream responses (TTFT and ITL need it).")
@click.option("--prompt", default="short", show_default=True, help="plain: short, long (about 1,500 tokens) or the prompt's text.")
@click.option("--num-predict", type=click.IntRange(min=1), help="Tokens to generate per request  [default: 128; rag: 32]")
@click.option(
    "--ignore-eos/--no-ignore-eos",
    default=True,
    show_default=True,
    help="Send ignore_eos on the OpenAI API, so every reply is --num-predict long.",
)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Requests per server before measuring, with prompts of their own: a first turn of a user no level has "
    "(sessions: the system prompt is shared, as in a running app), the shared system prompt and tools with a "
    "question of its own (shared-prefix), a context of its own (rag).",
)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds one request may take.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="REQ/S",
    help="Open loop: send requests at this mean rate (Poisson arrivals); concurrency then caps those in flight. Not for sessions.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the open loop's arrival times and of the workloads' texts (not plain's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write bench.csv and bench.svg (tokens/s and TTFT by concurrency) into this directory.",
)
def bench(
    model: str,
    url: str | None,
    api: Literal["ollama", "openai"],
    name: str | None,
    against_url: str | None,
    against_api: Literal["ollama", "openai"] | None,
    against_model: str | None,
    against_name: str | None,
    concurrency: tuple[int, ...],
    requests: int | None,
    workload: Literal["plain", "sessions", "shared-prefix", "rag"],
    users: int,
    turns: int,
    think_time: float,
    prefix_tokens: int,
    tools: bool,
    stream: bool,
    prompt: str,
    num_predict: int | None,
    ignore_eos: bool,
    temperature: float,
    warmup: int,
    timeout: float,
    rate: float | None,
    seed: int,
    as_json: bool,
    out_dir: Path | None,
) -> None:
    """Measure MODEL's throughput and latency on a server, at each concurrency level.

    Reports time to first token, inter-token latency and end-to-end latency (p50/p95/p99),
    requests/s and generated tokens/s, counted from the server's own usage fields. With
    --against, ratios above 1 mean the first server is faster. With --rate, requests arrive
    at random (Poisson) times at that mean rate instead of each worker waiting for its last
    answer. Like the other commands, it sends the first key of VLLAMA_API_KEY (else
    OLLAMA_API_KEY) as a bearer token.

    \b
    Workloads (--workload), each request numbered so that only what is shared on purpose
    can come from a server's prompt cache; the texts are generated from --seed:
      plain          numbered copies of --prompt, one user message each.
      sessions       --users conversations at once, each of --turns requests; every turn
                     sends the shared system prompt (about 360 tokens), the whole history
                     with the replies received and a new question, --think-time seconds
                     after the last reply; the concurrency caps the requests in flight.
                     Reported for all turns and for each turn.
      shared-prefix  one system prompt of --prefix-tokens and three tool definitions, the
                     same in every request, then a short question of its own.
      rag            about 1,500 tokens of passages of the request's own and a question;
                     --num-predict 32 unless given.
    """
    import asyncio

    from vllama.bench import chart, report, runner
    from vllama.bench.workload import NUM_PREDICT, Target, Workload, default_name
    from vllama.cli.client import auth_headers, base_url
    from vllama.cli.progress import requests_progress

    if workload == "sessions" and requests is not None:
        raise click.UsageError("sessions send --users × --turns requests per level; leave out -n/--requests")
    if workload == "sessions" and rate is not None:
        raise click.UsageError("sessions are paced by --think-time; --rate is for the other workloads")
    url = url or base_url()
    targets = [Target(name=name or default_name(url), url=url, api=api, model=model)]
    if against_url:
        targets.append(
            Target(name=against_name or default_name(against_url), url=against_url, api=against_api or api, model=against_model or model)
        )
    if len({t.name for t in targets}) < len(targets):
        raise click.UsageError("both servers have the same name; set --name or --against-name")
    work = Workload(
        kind=workload,
        prompt=prompt,
        concurrency=concurrency,
        requests=requests,
        stream=stream,
        num_predict=num_predict or NUM_PREDICT.get(workload, 128),
        temperature=temperature,
        ignore_eos=ignore_eos,
        warmup=warmup,
        timeout=timeout,
        rate=rate,
        seed=seed,
        users=users,
        turns=turns,
        think_time=think_time,
        prefix_tokens=prefix_tokens,
        tools=tools,
    )
    with requests_progress() as progress:
        result = asyncio.run(runner.run(targets, work, progress, headers=auth_headers()))
    click.echo(report.to_json(result) if as_json else report.table(result))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bench.csv").write_text(report.to_csv(result))
        (out_dir / "bench.svg").write_text(chart.svg(result))
        click.echo(f"wrote {out_dir / 'bench.csv'} and {out_dir / 'bench.svg'}", err=True)
    for target in targets:
        stats = [s for level in result.levels for s in level.results if s.target == target.name]
        if all(s.errors == s.requests for s in stats):
            raise click.ClickException(f"every request to {target.name} failed; first: {stats[0].first_error}")
