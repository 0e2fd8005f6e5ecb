"""A provider that replays scripted events: for end-to-end tests, benchmarks and trying sinks out.

It is a real provider (registered as ``scripted``, same engine path as GitHub or GitLab), whose "API"
is a JSON-lines file or a deterministic generator.
"""

from deploy_fetcher.providers.scripted.adapter import ScriptedProvider, ScriptedSource

__all__ = ["ScriptedProvider", "ScriptedSource"]
