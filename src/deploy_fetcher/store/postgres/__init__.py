"""The PostgreSQL state store (``state.backend: postgres``), for several replicas sharing one state.

Needs psycopg 3 and its pool: ``pip install 'deploy-fetcher[postgres]'`` (the container image has
them).
"""

from deploy_fetcher.store.postgres._copy import CopyReport, copy_sqlite_to_postgres
from deploy_fetcher.store.postgres._database import url_label
from deploy_fetcher.store.postgres._leases import Lease, LeaseBoard, Member
from deploy_fetcher.store.postgres._schema import SCHEMA, schema_version
from deploy_fetcher.store.postgres._store import PostgresStore

__all__ = [
    "SCHEMA",
    "CopyReport",
    "Lease",
    "LeaseBoard",
    "Member",
    "PostgresStore",
    "copy_sqlite_to_postgres",
    "schema_version",
    "url_label",
]
