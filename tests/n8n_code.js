// Runs the "Verify and dedupe" Code node of an n8n workflow JSON the way n8n does (an async
// function body with $input, this.helpers.getBinaryDataBuffer and $getWorkflowStaticData), twice
// on one request with the same static data, printing each result's json as one line, with the
// answer the "Answer at once" node would send for it (its `={{ ... }}` expressions evaluated
// over that json): `answer_status` and `answer_body`.
//
//   LULL_SINK_SECRET=whsec_... node tests/n8n_code.js workflow.json request.json
// request.json: {"headers": {...lower-case names...}, "body": "<raw body>"}
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [workflowPath, requestPath] = process.argv.slice(2);
const workflow = JSON.parse(fs.readFileSync(workflowPath, "utf8"));
const node = workflow.nodes.find((n) => n.name === "Verify and dedupe");
const code = node.parameters.jsCode;
const standalone = fs.readFileSync(path.join(path.dirname(workflowPath), "verify.js"), "utf8");
if (code !== standalone) {
  console.error("the workflow's Code node and verify.js differ");
  process.exit(2);
}
const secret = process.env.LULL_SINK_SECRET;
const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
const staticData = {};
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const respond = workflow.nodes.find((n) => n.name === "Answer at once").parameters;
// An n8n expression parameter, "={{ js }}", over the item's json; anything else is a constant.
const expression = (param, json) => {
  const m = /^=\{\{([\s\S]*)\}\}$/.exec(param);
  return m ? new Function("$json", `return (${m[1]});`)(json) : param;
};
const run = new AsyncFunction("$input", "$getWorkflowStaticData", "require", code.replace("whsec_REPLACE_ME", secret));

(async () => {
  for (let i = 0; i < 2; i++) {
    const input = { first: () => ({ json: { headers: request.headers } }) };
    const ctx = { helpers: { getBinaryDataBuffer: async () => Buffer.from(request.body, "utf8") } };
    const out = await run.call(ctx, input, () => staticData, require);
    const json = out[0].json;
    const answer_status = expression(respond.options.responseCode, json);
    const answer_body = respond.respondWith === "json" ? expression(respond.responseBody, json) : null;
    console.log(JSON.stringify({ ...json, answer_status, answer_body }));
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
