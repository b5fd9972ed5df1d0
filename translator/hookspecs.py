import pluggy

hookspec = pluggy.HookspecMarker("translator")
hookimpl = pluggy.HookimplMarker("translator")


@hookspec
def register_families(register):
    """Contribute model families: call ``register(family)`` once for each Family instance."""
