"""The provider kit: the parts every CI provider adapter is built from.

An adapter knows its API (URLs, payloads, which answers mean what) and nothing else; the kit owns
the rest, the same way for every provider (``docs/contributing/new-provider.md`` builds one):

**Configuration** — :class:`HttpSourceConfig`, the keys every HTTP source shares (``timeout``,
``retries``, ``max_rate_limit_wait``, ``tls_verify``, ``ca_bundle``, ``max_response_size``), and
:class:`OpenSetKeys` (``open_max``, ``open_max_age``) for providers that re-check open items.
Service names follow one rule everywhere (:data:`DEFAULT_SERVICE`, :func:`map_service`).

**Requests**, in layers, one concern each (as in httpx's client)::

    RequestPolicy.call        retries: full-jitter back-off (tenacity), Retry-After, interruptible
      └─ before_send          the gate: Quota / RequestBudget waits, or RateLimited
           └─ exchange        Limits: whole-request deadline, byte cap, redirect rule; a
                              server that ran into the deadline SLOW_SERVER_CUTS
                              times in a row is left alone for SLOW_SERVER_PAUSE
                              (one probe then)
                              (PolicyAdapter for requests-based SDKs, HttpClient on httpx;
                              JsonApi reads JSON through an HttpClient)
                └─ after_response   metrics, quota figures, the server's clock (Date)

:func:`classify` is the common reading of a status; an adapter handles its special cases first.

**Cursors** — :class:`Watermark` (mark, open set, done set, pruning, and a mark that never passes
the server's clock plus :data:`CLOCK_SKEW`); :class:`Record` dataclasses that read and write
themselves as compact, strictly checked JSON; :class:`Sealed` records stored with a version, a
mode and the source's scope.

**Paging** — :class:`LinkPaginator`, :class:`ContinuationPaginator`, :class:`OffsetPaginator`,
:class:`KeysetPaginator`: each refuses to loop (:class:`PaginationLoop`).

**Pages** — :func:`cursor_pages` turns a walk that keeps its cursor up to date into pages that
each carry the cursor covering them: every provider commits page by page; :func:`backfill_pages`
does the same for a backfill, whose pages carry no cursor.

**Names** — :func:`check_template` at load time, :func:`render_template` at poll time.

**Explaining** — :func:`record_raw` where an adapter maps raw objects to events, and
:func:`reread_recording` as its ``reread``: ``fetcher explain`` shows the objects an event came from.

The errors it raises are all in :mod:`deploy_fetcher.errors`' taxonomy::

    SourceError
    ├── RedirectRefused            a redirect to another host, port or scheme: not followed
    └── TransientError
        ├── DeadlineExceeded       no complete answer within ``timeout``
        ├── ResponseTooLarge       an answer beyond ``max_response_size``
        └── PaginationLoop         a server handing out a page token twice
"""

from deploy_fetcher.config import HttpSourceConfig
from deploy_fetcher.netlimits import display_url, requests_verify, tls_verify
from deploy_fetcher.providers.kit._cache import BoundedCache, ByteBudget, json_size
from deploy_fetcher.providers.kit._config import OpenSetKeys, settings_of
from deploy_fetcher.providers.kit._cursor import (
    DoneSet,
    OpenItem,
    OpenSet,
    Watermark,
    millis,
    scope_digest,
    timestamp,
)
from deploy_fetcher.providers.kit._errors import (
    DeadlineExceeded,
    RedirectRefused,
    ResponseTooLarge,
    Retry,
)
from deploy_fetcher.providers.kit._httpx import HttpClient, Reply
from deploy_fetcher.providers.kit._json import JsonApi
from deploy_fetcher.providers.kit._limits import Limits, check_redirect
from deploy_fetcher.providers.kit._naming import DEFAULT_SERVICE, check_service_map, map_service
from deploy_fetcher.providers.kit._pages import backfill_pages, cursor_pages
from deploy_fetcher.providers.kit._paging import (
    ContinuationPaginator,
    KeysetPaginator,
    LinkPaginator,
    OffsetPaginator,
    PaginationLoop,
    Paginator,
    parse_link_header,
)
from deploy_fetcher.providers.kit._policy import (
    CLOCK_SKEW,
    SLOW_SERVER_CUTS,
    SLOW_SERVER_PAUSE,
    LimitHit,
    RequestPolicy,
    classify,
)
from deploy_fetcher.providers.kit._quota import (
    Allowance,
    Blocked,
    Figures,
    Quota,
    RequestBudget,
    Tally,
    tally,
)
from deploy_fetcher.providers.kit._record import CursorMismatch, Record, Sealed, short
from deploy_fetcher.providers.kit._recording import (
    Recording,
    record_raw,
    recording,
    reread_recording,
)
from deploy_fetcher.providers.kit._requests import PolicyAdapter, policed_session
from deploy_fetcher.providers.kit._shared import credential_digest, shared_policy
from deploy_fetcher.providers.kit._templates import (
    check_template,
    render_template,
    template_fields,
)
from deploy_fetcher.retry_after import MAX_RETRY_AFTER, parse_retry_after

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_SERVICE",
    "MAX_RETRY_AFTER",
    "SLOW_SERVER_CUTS",
    "SLOW_SERVER_PAUSE",
    "Allowance",
    "Blocked",
    "BoundedCache",
    "ByteBudget",
    "ContinuationPaginator",
    "CursorMismatch",
    "DeadlineExceeded",
    "DoneSet",
    "Figures",
    "HttpClient",
    "HttpSourceConfig",
    "JsonApi",
    "KeysetPaginator",
    "LimitHit",
    "Limits",
    "LinkPaginator",
    "OffsetPaginator",
    "OpenItem",
    "OpenSet",
    "OpenSetKeys",
    "PaginationLoop",
    "Paginator",
    "PolicyAdapter",
    "Quota",
    "Record",
    "Recording",
    "RedirectRefused",
    "Reply",
    "RequestBudget",
    "RequestPolicy",
    "ResponseTooLarge",
    "Retry",
    "Sealed",
    "Tally",
    "Watermark",
    "backfill_pages",
    "check_redirect",
    "check_service_map",
    "check_template",
    "classify",
    "credential_digest",
    "cursor_pages",
    "display_url",
    "json_size",
    "map_service",
    "millis",
    "parse_link_header",
    "parse_retry_after",
    "policed_session",
    "record_raw",
    "recording",
    "render_template",
    "requests_verify",
    "reread_recording",
    "scope_digest",
    "settings_of",
    "shared_policy",
    "short",
    "tally",
    "template_fields",
    "timestamp",
    "tls_verify",
]
