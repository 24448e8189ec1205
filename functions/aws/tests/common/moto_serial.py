"""moto_server, with DynamoDB requests serialised.

moto serves requests on threads and its DynamoDB backend is not thread-safe: a conditional
PutItem checks and writes without a lock, and a failed TransactWriteItems "rolls back" by
restoring a copy of the whole table taken before it started, which clobbers (or resurrects)
writes other threads made meanwhile. Real DynamoDB makes each conditional write and each
transaction atomic, so the tests serialise DynamoDB requests here (one global lock) and leave
SQS (and its long polls) threaded.

That whole-table copy also makes every TransactWriteItems cost O(items in the table): with a few
thousand items (the 1,000-conversation benchmark) appends slowed to seconds and the server grew to
15 GB. Under the lock, a transaction of Put/Delete/ConditionCheck operations can snapshot the
table cheaply instead: those operations replace or remove Item objects, never change one in place,
so a copy of the table's item index (sharing the Item objects) restores it exactly. Transactions
with an Update (which edits an Item in place) keep moto's deep copy.

Usage: python3 moto_serial.py HOST PORT
"""

import copy
import sys
import threading
from collections import defaultdict

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

try:  # moto internals (5.x); without them the tests still run, only slower on big tables.
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
except ImportError:
    DynamoDBBackend = Table = None

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
moto_transact_write_items = getattr(DynamoDBBackend, "transact_write_items", None)


def item_index_snapshot(table, memo):
    """A Table copy sharing everything but a fresh item index (hash -> Item or {range: Item})."""
    snapshot = copy.copy(table)
    snapshot.items = defaultdict(
        dict,
        {k: (dict(v) if isinstance(v, dict) else v) for k, v in table.items.items()},
    )
    return snapshot


def transact_write_items(self, transact_items):
    updates = any(next(iter(item)) == "Update" for item in transact_items)
    tables = list(getattr(self, "tables", {}).values())
    plain = all(
        isinstance(getattr(t, "items", None), dict) and getattr(t, "stream_shard", None) is None
        for t in tables
    )
    # Stream records of a cancelled transaction would survive a snapshot that shares the
    # stream shard: tables with streams keep moto's deep copy (lull's table has none).
    if updates or not plain:
        return moto_transact_write_items(self, transact_items)
    # Only while this transaction runs, under the DynamoDB lock.
    Table.__deepcopy__ = item_index_snapshot
    try:
        return moto_transact_write_items(self, transact_items)
    finally:
        del Table.__deepcopy__


if moto_transact_write_items is not None and not hasattr(Table, "__deepcopy__"):
    DynamoDBBackend.transact_write_items = transact_write_items


def serialised(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with lock:
            return list(app(environ, start_response))
    return app(environ, start_response)


run_simple(host, port, serialised, threaded=True)
