"""moto_server, with DynamoDB requests serialised.

moto serves requests on threads and its DynamoDB backend is not thread-safe: a conditional
PutItem checks and writes without a lock, and a failed TransactWriteItems "rolls back" by
restoring a copy of the whole table taken before it started, which clobbers (or resurrects)
writes other threads made meanwhile. Real DynamoDB makes each conditional write and each
transaction atomic, so the tests serialise DynamoDB requests here (one global lock) and leave
SQS (and its long polls) threaded.

Usage: python3 moto_serial.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialised(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with lock:
            return list(app(environ, start_response))
    return app(environ, start_response)


run_simple(host, port, serialised, threaded=True)
