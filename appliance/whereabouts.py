"""Where the appliance a command talks to lives: one rule for every command.

The config's data folder (from --config, /etc/leaf-appliance/config.toml or the built-in
defaults), or with --simulate the simulated appliance's folder. When a command finds nothing
there, its message names both places and the flag that picks the other one, because a newcomer
running `appliance run --simulate` in one terminal and `appliance history` in another otherwise
reads "no records yet".
"""

from __future__ import annotations

from pathlib import Path

from .config import Config, simulated_data_dir


def command_flags(config_path: str | None, simulate: bool) -> str:
    """The flags that make another command look where this one does, e.g. ' --simulate'."""
    flags = f" --config {config_path}" if config_path else ""
    return flags + (" --simulate" if simulate else "")


def other_place(cfg: Config, simulate: bool) -> str:
    """One sentence on the place this command did not look in."""
    if simulate:
        return "without --simulate it looks in the config's data folder instead"
    sim = simulated_data_dir()
    if Path(cfg.data_dir) == sim:
        return "this is also where the simulated appliance keeps its data"
    return f"the simulated appliance (`appliance run --simulate`) keeps its data in {sim}: add --simulate"


def not_found(what: str, where: Path, cfg: Config, simulate: bool) -> str:
    """'no records at X (the simulated appliance's data folder); ...' for the command's message."""
    whose = "the simulated appliance's data folder" if simulate else "the config's data folder"
    return f"{what} {where} ({whose}); {other_place(cfg, simulate)}"
