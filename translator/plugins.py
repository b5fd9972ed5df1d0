"""Finding plugins and the model families they contribute.

Built-in plugins are registered by module name, third-party ones through the
``translator`` entry-point group. Every plugin is loaded on its own, so one that fails
to import or to register is reported by name and the rest still work.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .errors import TranslatorError, one_line
from .family import Family

# the repository's plugins/ folder, installed inside the package (see pyproject.toml)
DEFAULT_PLUGINS = ("translator.default_plugins.pix2pix", "translator.default_plugins.cyclegan", "translator.default_plugins.esrgan")
ENTRY_POINT_GROUP = "translator"
# comma-separated entry-point names to load (empty: none); the rescue when a plugin breaks things
ONLY_PLUGINS_VARIABLE = "TRANSLATOR_PLUGINS"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass
class PluginInfo:
    name: str
    version: str
    families: list[str] = field(default_factory=list)
    builtin: bool = False


@dataclass
class PluginFailure:
    name: str
    error: str


class Registry:
    """The loaded plugins and the families they registered."""

    def __init__(self, builtins=DEFAULT_PLUGINS, entry_points: bool = True):
        self.manager = pluggy.PluginManager("translator")
        self.manager.add_hookspecs(hookspecs)
        self.families: dict[str, Family] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        from . import __version__

        for module_name in builtins:
            self._add(module_name, __version__, lambda name=module_name: importlib.import_module(name), builtin=True)
        if entry_points:
            only = os.environ.get(ONLY_PLUGINS_VARIABLE)
            allowed = None if only is None else {n.strip() for n in only.split(",") if n.strip()}
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if allowed is not None and ep.name not in allowed:
                    continue
                version = ep.dist.version if ep.dist else "?"
                self._add(ep.name, version, ep.load)
        self._collect_families()

    def _add(self, name: str, version: str, load, builtin: bool = False) -> None:
        if name in self.plugins:
            return
        try:
            self.manager.register(load(), name=name)
            # a misspelt hook name would otherwise register nothing, silently
            self.manager.check_pending()
        except Exception as error:  # a plugin's import can fail in any way
            if self.manager.has_plugin(name):
                self.manager.unregister(name=name)
            self.failures.append(PluginFailure(name, one_line(error, named=True)))
            return
        self.plugins[name] = PluginInfo(name, version, builtin=builtin)

    def _collect_families(self) -> None:
        # Call each implementation by itself so one that raises costs only its own families.
        for impl in self.manager.hook.register_families.get_hookimpls():
            added: list[Family] = []
            try:
                impl.function(register=added.append)
                for family in added:
                    self._check(family)
            except Exception as error:
                self.failures.append(PluginFailure(impl.plugin_name, one_line(error, named=True)))
                continue
            for family in added:
                self.families[family.name] = family
                self.plugins[impl.plugin_name].families.append(family.name)

    def _check(self, family) -> None:
        if not isinstance(family, Family):
            raise TypeError(f"registered {family!r}, which is not a translator.Family")
        name = getattr(family, "name", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"family name {name!r} is not a lower-case identifier")
        if name in self.families:
            raise ValueError(f"family {name!r} is already registered by another plugin")

    def family(self, name: str) -> Family:
        try:
            return self.families[name]
        except KeyError:
            known = ", ".join(sorted(self.families)) or "none"
            broken = "; ".join(f"{f.name}: {f.error}" for f in self.failures)
            hint = f"; plugins that failed to load: {broken}" if broken else ""
            raise TranslatorError(f"no model family named {name!r} (installed: {known}{hint})") from None


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry
