"""A lull batch consumer in Python: standard library HTTP server + the `standardwebhooks` package.

    pip install standardwebhooks==1.1.0
    LULL_SINK_SECRET=whsec_... PORT=9000 python3 consumer.py
    lull serve --sink http://127.0.0.1:9000/batches --sink-secret whsec_...

For every POST it: (1) verifies the Standard Webhooks signature over the exact body bytes
(refusing a tampered body or a replay older than 5 minutes with 401), (2) dedupes on the batch
id (a retried hand-off carries the same id), (3) answers 200 at once, (4) then does the slow work
(your AI step) on a worker thread. lull waits at most its sink timeout for the answer; answering
first keeps you far inside it however slow the AI is (docs/batch.md, "The timeout contract").
Every answer to a signed request says whether the signature verified, `{"verified": true}` or
`{"verified": false}`, which `lull check --send-test-batch` reports (docs/batch.md, "Telling
`lull check` the signature verified"); hand-offs ignore the body.

After the work it asks the batch's reply guard whether the user wrote again meanwhile, and sends
the reply only when `current` (or when the next batch will not repeat this one); the prompt is
`context` + `text`, so a batch that supersedes another is answered as one thought. (To let lull
carry a superseded batch forward, `on_newer = "supersede"`, answer the POST after the work
instead: docs/batch.md, "The reply guard".)

Prints one line per event on stdout: `listening <port>`, then `processed <batch_id> <prompt>`
(after the work), `sent <batch_id>` or `discarded <batch_id> <newer messages>` (after the
guard), `duplicate <batch_id>`, `refused <reason>`.
"""

import json
import os
import queue
import sys
import threading
import time
import urllib.request
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 4 * 1024 * 1024  # a batch is far smaller; refuse anything bigger unread

secret = os.environ["LULL_SINK_SECRET"]
# `whsec_<base64>` secrets are decoded by the library; an older plain secret is raw key bytes.
webhook = Webhook(secret if secret.startswith("whsec_") else secret.encode())

work = queue.Queue()
seen = OrderedDict()  # batch ids already accepted; use your database in production
seen_lock = threading.Lock()
SEEN_MAX = 100_000


def log(*parts):
    print(*parts, flush=True)


def first_time(batch_id):
    """True the first time a batch id is seen (remembers the last SEEN_MAX ids)."""
    with seen_lock:
        if batch_id in seen:
            return False
        seen[batch_id] = True
        if len(seen) > SEEN_MAX:
            seen.popitem(last=False)
        return True


def prompt_of(batch):
    """The AI's prompt, the whole thought: a superseded batch's messages (`context`, on_newer =
    "supersede"), then this batch's joined text (`text` joins only its own `messages`), then a
    note for each edit or unsend of a message lull handed off before (`edit`/`revoke` messages
    name it in `target`; an edit or unsend that came while the message was still waiting was
    applied before the hand-off: docs/batch.md, "Edits and unsends")."""
    lines = []
    for m in batch.get("context", []):
        lines.extend(p for p in (m.get("text"), m.get("caption"), (m.get("reply") or {}).get("title")) if p)
    if batch.get("text"):
        lines.append(batch["text"])
    for m in batch.get("messages", []):
        target = (m.get("target") or {}).get("message_id", "?")
        if m.get("kind") == "edit":
            new = m.get("text") or m.get("caption") or ""
            lines.append(f"(the user edited their message {target}; it now says: {new})")
        elif m.get("kind") == "revoke":
            lines.append(f"(the user deleted their message {target}; disregard it)")
    return "\n".join(lines)


def ask_guard(batch):
    """GET the batch's reply guard just before sending (docs/batch.md, "The reply guard"):
    {"state": "current"}, {"state": "superseded", "newer_messages": N, "supersede": bool} or
    {"state": "typing", "retry_after_ms": N}."""
    guard = batch.get("reply_guard")
    if not guard:
        return {"state": "current"}
    try:
        with urllib.request.urlopen(guard["url"], timeout=5) as resp:
            return json.load(resp)
    except (OSError, ValueError) as e:
        log("guard-unavailable", batch["batch_id"], type(e).__name__)
        return {"state": "current"}  # cannot tell: answer rather than stay silent


def worker():
    while True:
        batch = work.get()
        # Your AI step goes here: one LLM call with every message the user just sent.
        prompt = prompt_of(batch)
        reply = "..."  # the LLM's answer to `prompt`
        log("processed", batch["batch_id"], json.dumps(prompt))
        said = ask_guard(batch)
        # The user is typing again (a presence after the batch closed): hold the reply and ask
        # again; lull says `typing` at most 30 s after the close (the loop's own bound too).
        deadline = time.monotonic() + 35
        while said.get("state") == "typing" and time.monotonic() < deadline:
            time.sleep(min(said.get("retry_after_ms", 1000), 5000) / 1000)
            said = ask_guard(batch)
        if said["state"] == "current" or not said.get("supersede"):
            log("sent", batch["batch_id"])  # send `reply` to the user here
        else:
            # The user wrote again and the next batch repeats this one as `context`.
            log("discarded", batch["batch_id"], said.get("newer_messages"))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length <= 0 or length > MAX_BODY:
            return self.answer(413 if length > 0 else 400, {"error": "bad length"})
        body = self.rfile.read(length)
        try:
            batch = webhook.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as e:
            log("refused", e)
            return self.answer(401, {"verified": False, "error": "bad signature"})
        if not first_time(batch["batch_id"]):
            log("duplicate", batch["batch_id"])
            return self.answer(200, {"verified": True, "duplicate": True})
        self.answer(200, {"verified": True})  # acknowledge first ...
        work.put(batch)  # ... then work

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # keep stdout for the events above (and personal data out of access logs)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "9000"))), Handler)
    threading.Thread(target=worker, daemon=True).start()
    log("listening", server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
