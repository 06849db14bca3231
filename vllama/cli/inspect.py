"""``vllama plugins`` and ``vllama hardware``: what this installation found."""

from __future__ import annotations

import click

from vllama.cli.main import cli


def _pm():
    from vllama.config import Settings
    from vllama.plugins import make_plugin_manager

    settings = Settings.from_env()
    return make_plugin_manager(allow=settings.plugins, modules=settings.plugin_modules)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins, their hooks and the backends they register."""
    from vllama.plugins import describe
    from vllama.selection import registered_backends

    pm = _pm()
    infos = describe(pm)
    backends = {name: cls.__module__ for name, cls in registered_backends(pm).items()}
    if as_json:
        import msgspec

        click.echo(msgspec.json.format(msgspec.json.encode({"plugins": infos, "backends": backends}).decode()))
        return
    for p in infos:
        origin = "built-in" if p.builtin else f"{p.distribution} {p.version}".strip() or p.module
        click.echo(f"{p.name:<28} {origin:<28} {', '.join(p.hooks)}")
    click.echo("\nbackends: " + (", ".join(f"{n} ({m})" for n, m in sorted(backends.items())) or "none"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hardware(as_json: bool) -> None:
    """Show the CPU and accelerators the probes found."""
    from vllama.hardware import probe

    hw = probe(_pm())
    if as_json:
        import msgspec

        click.echo(msgspec.json.format(msgspec.json.encode(hw).decode()))
        return
    for d in hw.devices:
        mem = f"{d.memory_bytes / 2**30:.1f} GiB" if d.memory_bytes else "?"
        extra = f"{d.cores} cores" if d.kind == "cpu" else f"compute {', '.join(d.features)}" if d.features else ""
        click.echo(f"{d.kind}:{d.index}  {d.name}  {mem}  {extra}".rstrip())
        if d.kind == "cpu" and d.features:
            click.echo(f"       flags: {' '.join(d.features)}")
