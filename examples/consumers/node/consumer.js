// A lull batch consumer in Node: plain node:http + the `standardwebhooks` npm package.
//
//   npm ci
//   LULL_SINK_SECRET=whsec_... PORT=9000 node consumer.js
//   lull serve --sink http://127.0.0.1:9000/batches --sink-secret whsec_...
//
// For every POST it: (1) verifies the Standard Webhooks signature over the exact body bytes
// (refusing a tampered body or a replay older than 5 minutes with 401), (2) dedupes on the batch
// id (a retried hand-off carries the same id), (3) answers 200 at once, (4) then does the slow
// work (your AI step). lull waits at most its sink timeout for the answer; answering first keeps
// you far inside it however slow the AI is (docs/batch.md, "The timeout contract").
// Every answer to a signed request says whether the signature verified, {"verified": true} or
// {"verified": false}, which `lull check --send-test-batch` reports (docs/batch.md, "Telling
// `lull check` the signature verified"); hand-offs ignore the body.
//
// After the work it asks the batch's reply guard whether the user wrote again meanwhile, and sends
// the reply only when `current` (or when the next batch will not repeat this one); the prompt is
// `context` + `text`, so a batch that supersedes another is answered as one thought. (To let lull
// carry a superseded batch forward, on_newer = "supersede", answer the POST after the work
// instead: docs/batch.md, "The reply guard".)
//
// Prints one line per event on stdout: `listening <port>`, then `processed <batch_id> <prompt>`
// (after the work), `sent <batch_id>` or `discarded <batch_id> <newer messages>` (after the
// guard), `duplicate <batch_id>`, `refused <reason>`.
"use strict";

const http = require("node:http");
const { Webhook, WebhookVerificationError } = require("standardwebhooks");

const MAX_BODY = 4 * 1024 * 1024; // a batch is far smaller; refuse anything bigger

const secret = process.env.LULL_SINK_SECRET;
// `whsec_<base64>` secrets are decoded by the library; an older plain secret is raw key bytes.
const webhook = secret.startsWith("whsec_")
  ? new Webhook(secret)
  : new Webhook(new TextEncoder().encode(secret), { format: "raw" });

const seen = new Set(); // batch ids already accepted; use your database in production
const SEEN_MAX = 100000;

function firstTime(batchId) {
  if (seen.has(batchId)) return false;
  seen.add(batchId);
  if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
  return true;
}

// The AI's prompt, the whole thought: a superseded batch's messages (`context`, on_newer =
// "supersede"), then this batch's joined text (`text` joins only its own `messages`), then a note
// for each edit or unsend of a message lull handed off before (`edit`/`revoke` messages name it in
// `target`; an edit or unsend that came while the message was still waiting was applied before
// the hand-off: docs/batch.md, "Edits and unsends").
function promptOf(batch) {
  const lines = [];
  for (const m of batch.context || []) {
    for (const p of [m.text, m.caption, m.reply && m.reply.title]) if (p) lines.push(p);
  }
  if (batch.text) lines.push(batch.text);
  for (const m of batch.messages || []) {
    const target = (m.target && m.target.message_id) || "?";
    if (m.kind === "edit") {
      lines.push(`(the user edited their message ${target}; it now says: ${m.text || m.caption || ""})`);
    } else if (m.kind === "revoke") {
      lines.push(`(the user deleted their message ${target}; disregard it)`);
    }
  }
  return lines.join("\n");
}

// GET the batch's reply guard just before sending (docs/batch.md, "The reply guard"):
// {"state": "current"}, {"state": "superseded", "newer_messages": N, "supersede": bool} or
// {"state": "typing", "retry_after_ms": N}.
async function askGuard(batch) {
  if (!batch.reply_guard) return { state: "current" };
  try {
    const res = await fetch(batch.reply_guard.url, { signal: AbortSignal.timeout(5000) });
    if (res.ok) return await res.json();
    console.log("guard-unavailable", batch.batch_id, res.status);
  } catch (e) {
    console.log("guard-unavailable", batch.batch_id, e.name);
  }
  return { state: "current" }; // cannot tell: answer rather than stay silent
}

async function work(batch) {
  // Your AI step goes here: one LLM call with every message the user just sent.
  const prompt = promptOf(batch);
  console.log("processed", batch.batch_id, JSON.stringify(prompt));
  let said = await askGuard(batch);
  // The user is typing again (a presence after the batch closed): hold the reply and ask again;
  // lull says `typing` at most 30 s after the close (the loop's own bound too).
  const deadline = Date.now() + 35000;
  while (said.state === "typing" && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(said.retry_after_ms || 1000, 5000)));
    said = await askGuard(batch);
  }
  if (said.state === "current" || !said.supersede) {
    console.log("sent", batch.batch_id); // send the reply to the user here
  } else {
    // The user wrote again and the next batch repeats this one as `context`.
    console.log("discarded", batch.batch_id, said.newer_messages);
  }
}

function answer(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") return answer(res, 405, { error: "POST only" });
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) {
      answer(res, 413, { error: "too large" });
      req.destroy();
    } else chunks.push(c);
  });
  req.on("end", () => {
    if (size > MAX_BODY) return;
    const body = Buffer.concat(chunks); // the exact bytes: never re-serialise before verifying
    let batch;
    try {
      batch = webhook.verify(body, req.headers);
    } catch (e) {
      if (!(e instanceof WebhookVerificationError)) throw e;
      console.log("refused", e.message);
      return answer(res, 401, { verified: false, error: "bad signature" });
    }
    if (!firstTime(batch.batch_id)) {
      console.log("duplicate", batch.batch_id);
      return answer(res, 200, { verified: true, duplicate: true });
    }
    answer(res, 200, { verified: true }); // acknowledge first ...
    setImmediate(() => work(batch).catch((e) => console.error("work failed", e))); // ... then work
  });
});

server.listen(Number(process.env.PORT || 9000), "127.0.0.1", () => {
  console.log("listening", server.address().port);
});
