/**
 * The `/docs` page of an endpoint: one self-contained HTML page (no script or style from elsewhere: the
 * machines that serve it may have no internet) that shows the operation of its OpenAPI document (method,
 * URL, query parameters, body schema) and a form that sends a request with fetch and shows the answer.
 */
export function docsPage(title: string, openApiJson: string): string {
  // Inside <script>, "</" would end the element and "<!--" can keep the real end tag from ending it: every
  // "<" is written as JSON's \u003c, which the tokenizer does not see and JSON.parse reads back.
  const embedded = openApiJson.replaceAll("<", "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · API docs</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.05rem; margin: 1.25rem 0 .5rem; }
.op { border: 1px solid #d0d5dd; border-radius: 8px; padding: 1rem 1.25rem; margin-top: 1.5rem; }
.head { display: flex; align-items: baseline; gap: .5rem; flex-wrap: wrap; }
.method { font-weight: 700; color: #fff; background: #2f6fdf; border-radius: 4px; padding: 0 .5rem; }
.method.post, .method.put, .method.patch { background: #1f8a4c; }
.method.delete { background: #c2352b; }
.url { overflow-wrap: anywhere; }
code, pre, textarea, input { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f5f6f8; padding: .75rem; border-radius: 6px; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #e4e7ec; overflow-wrap: anywhere; }
th { font-size: 13px; color: #5b6474; font-weight: 600; }
td.name, td.type { white-space: nowrap; overflow-wrap: normal; }
td.type { color: #6b3fa0; }
td.notes { width: 30%; }
.required { color: #c2352b; font-size: 13px; }
.default { color: #5b6474; font-size: 13px; }
.muted { color: #5b6474; }
details { margin-top: .75rem; }
summary { cursor: pointer; color: #5b6474; }
textarea { width: 100%; min-height: 8rem; box-sizing: border-box; }
input { width: 100%; max-width: 24rem; box-sizing: border-box; padding: .2rem .3rem; }
label { display: block; margin: .5rem 0 .2rem; font-weight: 600; }
button { margin-top: .75rem; padding: .4rem 1.2rem; font-weight: 600; cursor: pointer; }
#status { font-weight: 700; margin-top: 1rem; }
</style>
</head>
<body>
<h1 id="title"></h1>
<p>OpenAPI document: <a href="openapi.json">openapi.json</a></p>
<div class="op" id="operation"></div>
<script type="application/json" id="openapi">${embedded}</script>
<script>
const doc = JSON.parse(document.getElementById("openapi").textContent);
const [method, op] = Object.entries(doc.paths["/"])[0];
const endpoint = location.pathname.replace(/\\/docs\\/?$/, "/");
const make = (tag, text, className) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
};
document.getElementById("title").textContent = doc.info.title;
document.title = doc.info.title + " · API docs";
const box = document.getElementById("operation");
const head = make("div", undefined, "head");
head.append(make("span", method.toUpperCase(), "method " + method), make("code", location.origin + endpoint, "url"));
box.append(head);
if (op.description) box.append(make("p", op.description));

// Every value from the document goes in as text (textContent, value), never as markup.
function typeOf(s) {
  if (!s || typeof s !== "object") return "any";
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
  if (s.type === "array") return typeOf(s.items) + "[]";
  const type = Array.isArray(s.type) ? s.type.join(" | ") : s.type ?? "any";
  return s.format ? type + " (" + s.format + ")" : type;
}
function fieldTable(rows) {
  const table = make("table", undefined, "fields");
  const header = make("tr");
  for (const name of ["name", "type", "", "description"]) header.append(make("th", name));
  table.append(header);
  for (const { name, schema, required } of rows) {
    const row = make("tr");
    const notes = make("td", undefined, "notes");
    if (required) notes.append(make("div", "required", "required"));
    if (schema && schema.default !== undefined) notes.append(make("div", "default " + JSON.stringify(schema.default), "default"));
    row.append(make("td", undefined, "name"), make("td", typeOf(schema), "type"), notes, make("td", (schema && schema.description) || ""));
    row.firstChild.append(make("code", name));
    table.append(row);
  }
  return table;
}
function rawSchema(schema) {
  const details = make("details");
  details.append(make("summary", "JSON Schema"), make("pre", JSON.stringify(schema, null, 2)));
  return details;
}

const params = op.parameters ?? [];
if (params.length > 0) {
  box.append(make("h2", "Query parameters"));
  box.append(fieldTable(params.map((p) => ({ name: p.name, schema: p.schema, required: p.required }))));
}
const schema = op.requestBody?.content?.["application/json"]?.schema;
if (schema) {
  box.append(make("h2", "Body (JSON)"));
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {});
  if (fields.length > 0) box.append(fieldTable(fields.map(([name, s]) => ({ name, schema: s, required: required.has(name) }))));
  else box.append(make("p", typeOf(schema), "muted"));
  box.append(rawSchema(schema));
}
const responses = Object.entries(op.responses ?? {});
if (responses.length > 0) {
  box.append(make("h2", "Responses"));
  const table = make("table");
  for (const [code, r] of responses) {
    const row = make("tr");
    row.append(make("td"), make("td", r.description ?? ""));
    row.firstChild.append(make("code", code));
    table.append(row);
  }
  box.append(table);
}

box.append(make("h2", "Try it"));
const inputs = {};
for (const p of params) {
  const input = make("input"); input.name = p.name; input.id = "q-" + p.name;
  if (p.schema && p.schema.default !== undefined) input.placeholder = String(p.schema.default);
  const label = make("label", p.name + (p.required ? " (required)" : "")); label.htmlFor = input.id;
  inputs[p.name] = input;
  box.append(label, input);
}
let body;
if (schema) {
  body = make("textarea"); body.id = "body"; body.value = JSON.stringify(example(schema), null, 2);
  const label = make("label", "Body"); label.htmlFor = "body";
  box.append(label, body);
}
const send = make("button", "Send"); send.id = "send";
const status = make("div"); status.id = "status";
const output = make("pre"); output.id = "response"; output.hidden = true;
box.append(make("div"), send, status, output);
send.onclick = async () => {
  const url = new URL(endpoint, location.href);
  for (const [name, input] of Object.entries(inputs)) if (input.value !== "") url.searchParams.set(name, input.value);
  status.textContent = "…"; output.textContent = ""; output.hidden = true;
  try {
    const response = await fetch(url, { method: method.toUpperCase(), headers: body ? { "content-type": "application/json" } : {}, body: body ? body.value : undefined });
    status.textContent = response.status + " " + response.statusText;
    const text = await response.text();
    try { output.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch { output.textContent = text; }
    output.hidden = false;
  } catch (error) { status.textContent = "failed: " + error.message; }
};
function example(s) {
  if (!s || typeof s !== "object") return null;
  if (s.default !== undefined) return s.default;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  if (s.anyOf) return example(s.anyOf[0]);
  if (s.type === "object") return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, example(v)]));
  if (s.type === "array") return [];
  return { string: "", number: 0, integer: 0, boolean: false, null: null }[s.type] ?? null;
}
</script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}
