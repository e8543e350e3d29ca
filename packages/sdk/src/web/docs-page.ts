/**
 * The `/docs` page of an endpoint: one self-contained HTML page (no script or style from elsewhere: the
 * machines that serve it may have no internet) that shows the operation of its OpenAPI document (method,
 * URL, query parameters, body schema) and a form that sends a request with fetch and shows the answer.
 */
export function docsPage(title: string, openApiJson: string): string {
  // Inside <script>, "</" would end the element: JSON allows it escaped.
  const embedded = openApiJson.replaceAll("</", "<\\/");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · API docs</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.op { border: 1px solid #d0d5dd; border-radius: 8px; padding: 1rem 1.25rem; margin-top: 1.5rem; }
.method { display: inline-block; font-weight: 700; color: #fff; background: #2f6fdf; border-radius: 4px; padding: 0 .5rem; margin-right: .5rem; }
code, pre, textarea, input { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f5f6f8; padding: .75rem; border-radius: 6px; overflow: auto; }
textarea { width: 100%; min-height: 8rem; box-sizing: border-box; }
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
const make = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
document.getElementById("title").textContent = doc.info.title;
document.title = doc.info.title + " · API docs";
const box = document.getElementById("operation");
const head = make("div");
const badge = make("span", method.toUpperCase()); badge.className = "method";
head.append(badge, make("code", endpoint));
box.append(head);
const inputs = {};
for (const p of op.parameters ?? []) {
  const label = make("label", p.name + (p.required ? " (required)" : "") + " · query");
  const input = make("input"); input.name = p.name; input.id = "q-" + p.name;
  if (p.schema && p.schema.default !== undefined) input.placeholder = String(p.schema.default);
  inputs[p.name] = input;
  box.append(label, input, make("pre", JSON.stringify(p.schema, null, 2)));
}
let body;
const schema = op.requestBody?.content?.["application/json"]?.schema;
if (schema) {
  box.append(make("label", "Body schema (JSON)"), make("pre", JSON.stringify(schema, null, 2)));
  body = make("textarea"); body.id = "body"; body.value = JSON.stringify(example(schema), null, 2);
  box.append(make("label", "Body"), body);
}
const send = make("button", "Send"); send.id = "send";
const status = make("div"); status.id = "status";
const output = make("pre"); output.id = "response";
box.append(send, status, output);
send.onclick = async () => {
  const url = new URL(endpoint, location.href);
  for (const [name, input] of Object.entries(inputs)) if (input.value !== "") url.searchParams.set(name, input.value);
  status.textContent = "…"; output.textContent = "";
  try {
    const response = await fetch(url, { method: method.toUpperCase(), headers: body ? { "content-type": "application/json" } : {}, body: body ? body.value : undefined });
    status.textContent = response.status + " " + response.statusText;
    const text = await response.text();
    try { output.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch { output.textContent = text; }
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
