"""The canonical event as a JSON document, for the sinks that forward it as is (webhook, JSONL, stdout).

The document is the dashboard's contract payload plus the internal fields other consumers need
(``provider``, ``source``, ``metadata``). A sink's ``fields:`` list narrows it; the names are checked
when the configuration loads, so a typo fails at start-up instead of silently dropping a field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Literal, get_args

from deploy_fetcher.model import DeployEvent

__all__ = ["DOCUMENT_FIELDS", "DocumentField", "document", "dumps"]

#: A field of the canonical document (checked against the model's contract fields by the tests).
DocumentField = Literal[
    "deployment_id",
    "service",
    "environment",
    "status",
    "happened_at",
    "version",
    "run_url",
    "run_number",
    "actor",
    "ref",
    "sha",
    "parent_deployments",
    "provider",
    "source",
    "metadata",
]
DOCUMENT_FIELDS: Final[tuple[str, ...]] = get_args(DocumentField)


def document(event: DeployEvent, fields: Sequence[str] | None = None) -> dict[str, Any]:
    """The event as a JSON-ready dict: absent optional fields left out, ``fields`` in their order."""
    body = event.contract_payload()
    body["provider"] = event.provider
    body["source"] = event.source
    body["metadata"] = dict(sorted(event.metadata.items()))
    if fields is None:
        return body
    return {name: body[name] for name in fields if name in body}


#: DEL and the C1 controls as JSON escapes. JSON lets them stand raw (it escapes only U+0000 to
#: U+001F), but a line of the JSONL file or of stdout may end up on a terminal, and some terminals
#: obey U+009B as the start of an escape sequence: text from a CI server must stay text.
_C1_ESCAPES: Final = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON, the exact bytes that are sent (and signed); no control character raw."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_C1_ESCAPES).encode("utf-8")
