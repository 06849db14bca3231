"""``vllama bench``: measure a server that speaks Ollama's or OpenAI's API, or two side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from vllama.cli.main import cli

APIS = click.Choice(["ollama", "openai"])


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
@click.option("-n", "--requests", type=click.IntRange(min=1), help="Requests per level (default twice the concurrency, at least 4).")
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream responses (TTFT and ITL need it).")
@click.option("--prompt", default="short", show_default=True, help="short, long (about 1,500 tokens) or the prompt's text.")
@click.option("--num-predict", type=click.IntRange(min=1), default=128, show_default=True, help="Tokens to generate per request.")
@click.option(
    "--ignore-eos/--no-ignore-eos",
    default=True,
    show_default=True,
    help="Send ignore_eos on the OpenAI API, so every reply is --num-predict long.",
)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Requests per server before measuring.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds one request may take.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="REQ/S",
    help="Open loop: send requests at this mean rate (Poisson arrivals); concurrency then caps those in flight.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the open loop's arrival times.")
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
    stream: bool,
    prompt: str,
    num_predict: int,
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
    """
    import asyncio

    from vllama.bench import chart, report, runner
    from vllama.bench.workload import Target, Workload, default_name
    from vllama.cli.client import auth_headers, base_url
    from vllama.cli.progress import requests_progress

    url = url or base_url()
    targets = [Target(name=name or default_name(url), url=url, api=api, model=model)]
    if against_url:
        targets.append(
            Target(name=against_name or default_name(against_url), url=against_url, api=against_api or api, model=against_model or model)
        )
    if len({t.name for t in targets}) < len(targets):
        raise click.UsageError("both servers have the same name; set --name or --against-name")
    workload = Workload(
        prompt=prompt,
        concurrency=concurrency,
        requests=requests,
        stream=stream,
        num_predict=num_predict,
        temperature=temperature,
        ignore_eos=ignore_eos,
        warmup=warmup,
        timeout=timeout,
        rate=rate,
        seed=seed,
    )
    with requests_progress() as progress:
        result = asyncio.run(runner.run(targets, workload, progress, headers=auth_headers()))
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
