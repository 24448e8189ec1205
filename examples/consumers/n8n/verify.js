// The Code node of lull-batches.json ("Verify and dedupe"), kept here as a file so it can be
// read and tested; the workflow JSON embeds the same code (scripts check they agree).
//
// Standard Webhooks by hand with node:crypto, because n8n Cloud cannot install the
// `standardwebhooks` package (self-hosted: NODE_FUNCTION_ALLOW_EXTERNAL=standardwebhooks lets
// you use the library instead). Self-hosted n8n also needs NODE_FUNCTION_ALLOW_BUILTIN=crypto.
const crypto = require('crypto');

const SECRET = 'whsec_REPLACE_ME'; // your sink secret (better: an n8n credential or $env)
const TOLERANCE_S = 5 * 60;

const item = $input.first();
const headers = item.json.headers || {};
const body = await this.helpers.getBinaryDataBuffer(0, 'data'); // the raw body (Webhook option "Raw Body")

// `verified` goes back in the answer ("Answer at once"), for `lull check --send-test-batch`.
function refuse(reason) {
  return [{ json: { status: 401, verified: false, process: false, reason } }];
}

const id = headers['webhook-id'];
const ts = headers['webhook-timestamp'];
const sigs = headers['webhook-signature'];
if (!id || !ts || !sigs) return refuse('missing webhook-* headers');
const now = Math.floor(Date.now() / 1000);
if (!/^\d+$/.test(ts) || Math.abs(now - Number(ts)) > TOLERANCE_S) return refuse('timestamp outside tolerance');

const key = SECRET.startsWith('whsec_')
  ? Buffer.from(SECRET.slice('whsec_'.length), 'base64')
  : Buffer.from(SECRET, 'utf8'); // an older plain secret: raw key bytes
const expected = crypto.createHmac('sha256', key).update(`${id}.${ts}.`).update(body).digest();
const ok = sigs.split(' ').some((vs) => {
  const [version, sig] = vs.split(',');
  if (version !== 'v1' || !sig) return false;
  const given = Buffer.from(sig, 'base64');
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
});
if (!ok) return refuse('signature does not match');

const batch = JSON.parse(body.toString('utf8'));
// Dedupe on the batch id: a retried hand-off carries the same id. Static data persists across
// production executions; keep the last 10,000 ids.
const store = $getWorkflowStaticData('global');
store.seen = store.seen || [];
if (store.seen.includes(batch.batch_id)) {
  return [{ json: { status: 200, verified: true, process: false, duplicate: true, batch_id: batch.batch_id } }];
}
store.seen.push(batch.batch_id);
if (store.seen.length > 10000) store.seen.splice(0, store.seen.length - 10000);
return [{ json: { status: 200, verified: true, process: true, batch } }];
