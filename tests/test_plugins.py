"""The plugin manager, entry points and the allowlist, backend registration and choice."""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import ClassVar

import pytest

from vllama import hookspecs
from vllama.engine import Backend, Support
from vllama.errors import NoBackend, PluginError
from vllama.hookspecs import hookimpl
from vllama.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, describe, make_plugin_manager
from vllama.selection import Candidate, choose, registered_backends
from vllama.types import Hardware, ModelRef

ECHO = "vllama.testing.echo"
HOOKS_MD = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "hooks.md"


def plugin_names(pm) -> set[str]:
    return {name for name, plugin in pm.list_name_plugin() if plugin is not None}


# -- the manager ----------------------------------------------------------------------------


def test_builtins_only() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    assert plugin_names(pm) == set(BUILTIN_PLUGINS)
    assert BUILTIN_PLUGINS == ("vllama.probes", "vllama.resolvers", "vllama.selection")
    assert registered_backends(pm) == {}


def test_no_builtins() -> None:
    assert plugin_names(make_plugin_manager(load_entrypoints=False, builtins=False)) == set()


def test_modules_register_echo_backends() -> None:
    pm = make_plugin_manager(load_entrypoints=False, modules=[ECHO])
    assert plugin_names(pm) == set(BUILTIN_PLUGINS) | {ECHO}
    backends = registered_backends(pm)
    assert set(backends) == {"echo", "echo-isolated", "echo-text", "echo-plain"}
    assert backends["echo"].isolated is False and backends["echo-isolated"].isolated is True


def test_module_listed_twice_is_registered_once() -> None:
    pm = make_plugin_manager(load_entrypoints=False, modules=[ECHO, ECHO])
    assert set(registered_backends(pm)) == {"echo", "echo-isolated", "echo-text", "echo-plain"}


def test_unknown_module_fails_loudly() -> None:
    with pytest.raises(ModuleNotFoundError):
        make_plugin_manager(load_entrypoints=False, modules=["vllama_no_such_plugin_module"])


class _Base(Backend):
    formats: ClassVar[frozenset[str]] = frozenset({"gguf"})

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        return Support(score=1)

    @classmethod
    async def load(cls, model, hardware, settings):
        raise NotImplementedError


def _plugin(*classes: type) -> object:
    class Plugin:
        @hookimpl
        def register_backends(self, register) -> None:
            for cls in classes:
                register(cls)

    return Plugin()


def test_two_backends_with_one_name_is_a_plugin_error() -> None:
    first = type("First", (_Base,), {"name": "dup"})
    second = type("Second", (_Base,), {"name": "dup"})
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(_plugin(first), name="p1")
    pm.register(_plugin(second), name="p2")
    with pytest.raises(PluginError, match="two backends are named 'dup'"):
        registered_backends(pm)


def test_same_class_registered_twice_is_fine() -> None:
    cls = type("Once", (_Base,), {"name": "once"})
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(_plugin(cls), name="p1")
    pm.register(_plugin(cls), name="p2")
    assert registered_backends(pm) == {"once": cls}


def test_registering_a_non_backend_is_a_plugin_error() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(_plugin(object), name="bad")
    with pytest.raises(PluginError, match="not a Backend subclass"):
        registered_backends(pm)


# -- entry points and the allowlist ---------------------------------------------------------


def test_allowlist_excludes_entry_points() -> None:
    pm = make_plugin_manager(allow=["nonexistent"])
    assert plugin_names(pm) == set(BUILTIN_PLUGINS)
    assert registered_backends(pm) == {}
    assert plugin_names(make_plugin_manager(allow=[])) == set(BUILTIN_PLUGINS)


def test_allowlist_loads_named_entry_point() -> None:
    pm = make_plugin_manager(allow=["llamacpp"])
    assert "llamacpp" in plugin_names(pm)
    assert "llamacpp" in registered_backends(pm)
    info = {p.name: p for p in describe(pm)}["llamacpp"]
    assert info.builtin is False and info.hooks == ["register_backends", "resolve_model"]
    assert info.distribution and info.version


def _broken_distribution(root: Path, module: str, body: str) -> None:
    dist = root / f"{module}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{module} = {module}\n")
    (root / f"{module}.py").write_text(body)


def test_broken_entry_point_is_logged_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _broken_distribution(tmp_path, "vllama_test_broken_plugin", "raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.ERROR, logger="vllama.plugins"):
        pm = make_plugin_manager()
    errors = [r for r in caplog.records if r.name == "vllama.plugins" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "vllama_test_broken_plugin" in errors[0].getMessage()
    assert "broken on import" in str(errors[0].exc_info[1])
    assert "vllama_test_broken_plugin" not in plugin_names(pm)
    assert set(BUILTIN_PLUGINS) <= plugin_names(pm)


def test_entry_point_from_a_temporary_distribution_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = (
        "from typing import ClassVar\n"
        "from vllama import hookimpl\n"
        "from vllama.testing.echo import EchoBackend\n"
        "class TmpBackend(EchoBackend):\n"
        "    name: ClassVar[str] = 'tmp-echo'\n"
        "@hookimpl\n"
        "def register_backends(register):\n"
        "    register(TmpBackend)\n"
    )
    _broken_distribution(tmp_path, "vllama_test_good_plugin", body)
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = make_plugin_manager(allow=["vllama_test_good_plugin"])
    assert "tmp-echo" in registered_backends(pm)
    info = {p.name: p for p in describe(pm)}["vllama_test_good_plugin"]
    assert (info.distribution, info.version, info.builtin) == ("vllama_test_good_plugin", "0.1", False)
    # Not in the allowlist: not loaded.
    assert "vllama_test_good_plugin" not in plugin_names(make_plugin_manager(allow=["llamacpp"]))


# -- describe -------------------------------------------------------------------------------------


def test_describe() -> None:
    pm = make_plugin_manager(load_entrypoints=False, modules=[ECHO])
    infos = describe(pm)
    by_name = {p.name: p for p in infos}
    assert set(by_name) == set(BUILTIN_PLUGINS) | {ECHO}
    assert by_name[ECHO].builtin is False
    assert by_name[ECHO].module == ECHO
    assert by_name[ECHO].hooks == ["register_backends"]
    assert by_name["vllama.probes"].builtin is True
    assert by_name["vllama.probes"].hooks == ["probe_hardware"]
    assert by_name["vllama.resolvers"].hooks == ["resolve_model"]
    assert by_name["vllama.selection"].hooks == ["select_backend"]
    assert all(p.distribution == "" for p in infos)
    # Plugins first, built-ins after, each sorted by name.
    assert [p.name for p in infos] == [ECHO, *sorted(BUILTIN_PLUGINS)]


def test_describe_instance_plugin() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(_plugin(type("X", (_Base,), {"name": "x"})), name="instance")
    info = {p.name: p for p in describe(pm)}["instance"]
    assert info.module == "Plugin" and info.hooks == ["register_backends"] and not info.builtin


# -- choosing a backend ------------------------------------------------------------------------------


def _backend(name: str, score: int | None, formats: set[str] = frozenset({"gguf"})) -> type[Backend]:
    def supports(cls, model, hardware):
        return None if score is None else Support(score=score, reason=f"{name} fits")

    return type(name.title(), (_Base,), {"name": name, "formats": frozenset(formats), "supports": classmethod(supports)})


def _model(fmt: str = "gguf", **parameters: object) -> ModelRef:
    return ModelRef(name="m:latest", format=fmt, path="/nonexistent", parameters=dict(parameters))


@pytest.fixture
def pm():
    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def backends() -> dict[str, type[Backend]]:
    return {
        "low": _backend("low", 10),
        "high": _backend("high", 100),
        "mid": _backend("mid", 50),
        "never": _backend("never", None),
        "st": _backend("st", 1000, {"safetensors"}),
    }


def test_choose_highest_score(pm, backends) -> None:
    chosen = choose(pm, backends, _model(), Hardware())
    assert isinstance(chosen, Candidate)
    assert chosen.backend is backends["high"]
    assert chosen.support.score == 100 and chosen.support.reason == "high fits"


def test_choose_ignores_backends_of_other_formats(pm, backends) -> None:
    assert choose(pm, backends, _model("safetensors"), Hardware()).backend is backends["st"]


def test_ties_go_to_the_first(pm) -> None:
    a, b = _backend("a", 5), _backend("b", 5)
    assert choose(pm, {"a": a, "b": b}, _model(), Hardware()).backend is a
    assert choose(pm, {"b": b, "a": a}, _model(), Hardware()).backend is b


def test_forced(pm, backends) -> None:
    assert choose(pm, backends, _model(), Hardware(), forced="low").backend is backends["low"]


def test_model_parameter_backend(pm, backends) -> None:
    assert choose(pm, backends, _model(backend="mid"), Hardware()).backend is backends["mid"]
    # The model's parameter beats VLLAMA_BACKEND.
    assert choose(pm, backends, _model(backend="mid"), Hardware(), forced="low").backend is backends["mid"]


def test_forced_backend_not_installed(pm, backends) -> None:
    with pytest.raises(NoBackend) as info:
        choose(pm, backends, _model(), Hardware(), forced="vllm")
    assert info.value.message == "backend 'vllm' is not installed (installed: high, low, mid, never, st)"
    with pytest.raises(NoBackend, match=r"installed: none\)"):
        choose(pm, {}, _model(backend="vllm"), Hardware())


def test_forced_backend_that_cannot_run_it(pm, backends) -> None:
    with pytest.raises(NoBackend, match=r"backend 'never' cannot run m:latest \(gguf\) on this machine"):
        choose(pm, backends, _model(), Hardware(), forced="never")
    with pytest.raises(NoBackend, match=r"backend 'st' cannot run m:latest \(gguf\)"):
        choose(pm, backends, _model(), Hardware(), forced="st")


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (
            "gguf",
            "no installed backend runs gguf models; install the llama.cpp backend (pip install ./plugins/vllama-llamacpp) "
            "from a vllama checkout (docs/install.md)",
        ),
        (
            "safetensors",
            "no installed backend runs safetensors models; install the vLLM or MLX backend "
            "(pip install ./plugins/vllama-vllm or ./plugins/vllama-mlx) from a vllama checkout (docs/install.md)",
        ),
        (
            "mlx",
            "no installed backend runs mlx models; install the MLX backend (pip install ./plugins/vllama-mlx) from a vllama checkout (docs/install.md)",
        ),
        ("onnx", "no installed backend runs onnx models"),
    ],
)
def test_no_backend_for_the_format(pm, fmt: str, message: str) -> None:
    with pytest.raises(NoBackend) as info:
        choose(pm, {}, _model(fmt), Hardware())
    assert info.value.message == message


def test_no_backend_can_run_it_here(pm) -> None:
    backends = {"never": _backend("never", None), "nope": _backend("nope", None)}
    with pytest.raises(NoBackend) as info:
        choose(pm, backends, _model(), Hardware())
    assert info.value.message == "no installed backend can run m:latest on this machine (tried: never, nope)"


def test_select_backend_hook_can_override(pm, backends) -> None:
    class PreferLow:
        @hookimpl
        def select_backend(self, candidates):
            return next((c for c in candidates if c.backend.name == "low"), None)

    pm.register(PreferLow(), name="prefer-low")
    assert choose(pm, backends, _model(), Hardware()).backend is backends["low"]
    # A plugin that abstains leaves the default policy in charge.
    assert choose(pm, backends, _model("safetensors"), Hardware()).backend is backends["st"]


def test_choose_with_echo(pm) -> None:
    pm = make_plugin_manager(load_entrypoints=False, modules=[ECHO])
    chosen = choose(pm, registered_backends(pm), _model("mlx"), Hardware())
    assert chosen.backend.name in {"echo", "echo-isolated", "echo-text", "echo-plain"}
    assert chosen.support.parallel == 4


# -- hook contract ----------------------------------------------------------------------------------


def _hookspecs() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "vllama_spec")}


def test_hookspecs_are_the_documented_set() -> None:
    assert set(_hookspecs()) == {
        "probe_hardware",
        "register_backends",
        "resolve_model",
        "select_backend",
        "register_routes",
        "register_commands",
    }


def test_every_hookspec_has_a_docstring() -> None:
    for name in _hookspecs():
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, name


@pytest.mark.xfail(not HOOKS_MD.exists(), reason="docs/plugins/hooks.md pending", strict=False)
def test_every_hook_is_documented_with_its_arguments() -> None:
    text = HOOKS_MD.read_text()
    missing = []
    for name, sig in _hookspecs().items():
        expected = f"{name}({', '.join(sig.parameters)})"
        if not re.search(re.escape(expected), text):
            missing.append(expected)
    assert missing == []
