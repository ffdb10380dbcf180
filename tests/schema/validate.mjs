// Validates recorded exchanges of the fake GitHub against GitHub's published OpenAPI descriptions.
// Input: a JSON-lines file; each line is {"kind":"rest","method","path" (the OpenAPI path template),
// "status","body"} or {"kind":"webhook","event" (e.g. "workflow-job-queued"),"body"}.
// Prints one line per failure and exits 1 if any.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const require = createRequire(import.meta.url);
const rest = require("@octokit/openapi/generated/api.github.com.deref.json");
const hooks = require("@octokit/openapi-webhooks/generated/api.github.com.json");

// OpenAPI 3.0 marks optional nulls with `nullable: true`, also next to an `enum` that lists no null
// (GitHub's job `conclusion` is such a field); JSON Schema needs the null in the enum.
function allowNullables(s, seen = new Set()) {
  if (!s || typeof s !== "object" || seen.has(s)) return;
  seen.add(s);
  if (s.nullable === true && Array.isArray(s.enum) && !s.enum.includes(null)) s.enum = [...s.enum, null];
  for (const v of Object.values(s)) allowNullables(v, seen);
}
allowNullables(rest);
allowNullables(hooks);

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema({ $id: "hooks", components: hooks.components });

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.trim());
let failed = 0;
let checked = 0;
for (const line of lines) {
  const x = JSON.parse(line);
  let schema;
  let what;
  if (x.kind === "webhook") {
    what = `webhook ${x.event}`;
    const ref = hooks.webhooks[x.event]?.post?.requestBody?.content?.["application/json"]?.schema?.$ref;
    if (!ref) { console.log(`${what}: no such webhook in the description`); failed++; continue; }
    schema = { $ref: `hooks${ref}` };
  } else {
    what = `${x.method.toUpperCase()} ${x.path} → ${x.status}`;
    const op = rest.paths[x.path]?.[x.method.toLowerCase()];
    if (!op) { console.log(`${what}: no such operation in the description`); failed++; continue; }
    const resp = op.responses[String(x.status)];
    if (!resp) { console.log(`${what}: status not documented (documented: ${Object.keys(op.responses).join(", ")})`); failed++; continue; }
    schema = resp.content?.["application/json"]?.schema;
    if (!schema) { checked++; continue; } // e.g. 204, 304: no body
  }
  const ok = ajv.validate(schema, x.body);
  checked++;
  if (!ok) {
    failed++;
    for (const e of ajv.errors.slice(0, 8)) console.log(`${what}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }
}
console.log(`${checked} checked, ${failed} failed`);
process.exit(failed ? 1 : 0);
