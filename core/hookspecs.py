"""The one place revprompt's plugin hooks are declared.

Built-in sources and analyzers are registered through these hooks exactly like third-party plugins, which
are discovered through the `revprompt` entry-point group:

    [project.entry-points.revprompt]
    my_plugin = "my_package.my_module"
"""

import pluggy

hookspec = pluggy.HookspecMarker("revprompt")
hookimpl = pluggy.HookimplMarker("revprompt")


@hookspec
def register_sources(register):
    """Call `register(source)` for each Source this plugin provides (see revprompt.sources.base.Source)."""


@hookspec
def register_analyzers(register):
    """Call `register(analyzer)` for each Analyzer this plugin provides (see revprompt.core.analyzers.Analyzer)."""


@hookspec
def register_commands(cli):
    """Add click commands to the `revprompt` CLI group, e.g. `cli.add_command(my_command)`."""
