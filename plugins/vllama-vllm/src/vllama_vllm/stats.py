"""vLLM's own engine statistics, collected by a stat logger and read by ``Engine.info()``
(so they reach /api/ps, /api/show and /metrics as ``vllm.*`` keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LiveStats:
    """The latest scheduler state and running totals of one engine (all its DP ranks)."""

    #: Per data-parallel rank: (running, waiting, KV cache usage 0..1).
    ranks: dict[int, tuple[int, int, float]] = field(default_factory=dict)
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    preemptions: int = 0
    finished_requests: int = 0

    def record(self, scheduler: Any, iteration: Any, rank: int = 0) -> None:
        if scheduler is not None:
            self.ranks[rank] = (scheduler.num_running_reqs, scheduler.num_waiting_reqs, scheduler.kv_cache_usage)
            prefix = scheduler.prefix_cache_stats
            if prefix is not None:
                self.prefix_cache_queries += prefix.queries
                self.prefix_cache_hits += prefix.hits
        if iteration is not None:
            self.prompt_tokens += iteration.num_prompt_tokens
            self.generation_tokens += iteration.num_generation_tokens
            self.preemptions += iteration.num_preempted_reqs
            self.finished_requests += len(iteration.finished_requests)

    def as_info(self) -> dict[str, int | float]:
        ranks = list(self.ranks.values())
        return {
            "vllm.num_requests_running": sum(r[0] for r in ranks),
            "vllm.num_requests_waiting": sum(r[1] for r in ranks),
            "vllm.kv_cache_usage_perc": sum(r[2] for r in ranks) / len(ranks) if ranks else 0.0,
            "vllm.prefix_cache_queries_total": self.prefix_cache_queries,
            "vllm.prefix_cache_hits_total": self.prefix_cache_hits,
            "vllm.prompt_tokens_total": self.prompt_tokens,
            "vllm.generation_tokens_total": self.generation_tokens,
            "vllm.num_preemptions_total": self.preemptions,
            "vllm.request_success_total": self.finished_requests,
        }


def logger_factory(stats: LiveStats) -> Any:
    """A vLLM StatLoggerFactory whose loggers feed ``stats`` (imports vLLM)."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class Logger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
            stats.record(scheduler_stats, iteration_stats, engine_idx)

        def log_engine_initialized(self) -> None:
            pass

    return Logger
