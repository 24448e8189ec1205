// Runs the part of an n8n workflow JSON that follows a verified batch, from the node named
// `start`, the way n8n runs it: each node's output goes to the nodes its `connections` name (an
// If node: output 0 when its conditions hold, 1 when not), `={{ ... }}` parameters are
// expressions over `$json` (the node's input item), `$runIndex` (how often this node ran before
// in this execution) and `$('Node')` (another node's latest output). It plays the node types the
// example uses: Code (its jsCode, run once for all items), HTTP Request v4 (GET, JSON answer,
// `onError: continueRegularOutput`), If v2 (conditions of boolean/string/number operators, `and`
// or `or`), Wait (time interval) and No Operation. Prints one JSON line: the nodes in the order
// they ran (`path`), the last node (`end`) and its output item's json (`json`).
//
//   node tests/n8n_flow.js workflow.json start-node input.json
// input.json: the json of the item that reaches `start` (for the example: {"batch": {...}}).
"use strict";
const fs = require("node:fs");

const [workflowPath, start, inputPath] = process.argv.slice(2);
const workflow = JSON.parse(fs.readFileSync(workflowPath, "utf8"));
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
const byName = Object.fromEntries(workflow.nodes.map((n) => [n.name, n]));
const outputs = {};
const runs = {};
const path = [];
const MAX_STEPS = 500;
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;

const $ = (name) => {
  const items = outputs[name];
  if (!items) throw new Error(`$('${name}'): that node has not run`);
  return { first: () => items[0], last: () => items[items.length - 1], all: () => items, item: items[0] };
};

// An n8n parameter: "={{ js }}" is an expression, anything else a constant.
function param(value, json, runIndex) {
  if (typeof value !== "string") return value;
  const m = /^=\{\{([\s\S]*)\}\}$/.exec(value);
  if (!m) return value;
  return new Function("$json", "$runIndex", "$", `return (${m[1]});`)(json, runIndex, $);
}

function holds(cond, json, runIndex) {
  const left = param(cond.leftValue, json, runIndex);
  const right = param(cond.rightValue, json, runIndex);
  const { type, operation } = cond.operator;
  const ops = {
    boolean: { true: () => left === true, false: () => left === false, equals: () => left === right },
    string: { equals: () => left === right, notEquals: () => left !== right },
    number: { equals: () => left === right, lt: () => left < right, gt: () => left > right },
  };
  const op = ops[type] && ops[type][operation];
  if (!op) throw new Error(`If operator ${type}/${operation} is not played here`);
  if (cond.operator.type === "boolean" && typeof left !== "boolean") {
    throw new Error(`strict type validation: ${JSON.stringify(left)} is not a boolean`);
  }
  return op();
}

async function execute(node, items, runIndex) {
  const json = items[0] ? items[0].json : {};
  const p = node.parameters || {};
  switch (node.type) {
    case "n8n-nodes-base.code": {
      const run = new AsyncFunction("$input", "$", "require", p.jsCode);
      const inputApi = { first: () => items[0], all: () => items, last: () => items[items.length - 1] };
      return { items: await run(inputApi, $, require), branch: 0 };
    }
    case "n8n-nodes-base.httpRequest": {
      if ((p.method || "GET") !== "GET") throw new Error("only GET is played here");
      try {
        const url = param(p.url, json, runIndex);
        const timeout = (p.options && p.options.timeout) || 300000;
        const res = await fetch(url, { signal: AbortSignal.timeout(timeout) });
        const text = await res.text();
        if (!res.ok) throw new Error(`${res.status} - ${text}`);
        return { items: [{ json: JSON.parse(text) }], branch: 0 };
      } catch (e) {
        if (node.onError !== "continueRegularOutput") throw e;
        return { items: [{ json: { error: String(e.message || e) } }], branch: 0 };
      }
    }
    case "n8n-nodes-base.if": {
      const c = p.conditions;
      const results = c.conditions.map((cond) => holds(cond, json, runIndex));
      const ok = c.combinator === "or" ? results.some(Boolean) : results.every(Boolean);
      return { items, branch: ok ? 0 : 1 };
    }
    case "n8n-nodes-base.wait": {
      if ((p.resume || "timeInterval") !== "timeInterval") throw new Error("only time intervals are played here");
      const unit = { seconds: 1000, minutes: 60000 }[p.unit];
      if (!unit) throw new Error(`Wait unit ${p.unit} is not played here`);
      await new Promise((r) => setTimeout(r, Number(param(p.amount, json, runIndex)) * unit));
      return { items, branch: 0 };
    }
    case "n8n-nodes-base.noOp":
      return { items, branch: 0 };
    default:
      throw new Error(`node type ${node.type} is not played here`);
  }
}

(async () => {
  let queue = [[start, [{ json: input }]]];
  let last = null;
  while (queue.length) {
    if (path.length >= MAX_STEPS) throw new Error("the flow did not end");
    const [name, items] = queue.shift();
    const node = byName[name];
    if (!node) throw new Error(`no node named ${name}`);
    const runIndex = (runs[name] = name in runs ? runs[name] + 1 : 0);
    path.push(name);
    const { items: out, branch } = await execute(node, items, runIndex);
    outputs[name] = out;
    last = name;
    const next = ((workflow.connections[name] || {}).main || [])[branch] || [];
    queue = queue.concat(next.map((c) => [c.node, out]));
  }
  console.log(JSON.stringify({ path, end: last, json: outputs[last][0] ? outputs[last][0].json : null }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
