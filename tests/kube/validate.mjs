// Validates Kubernetes objects with the npm package kubernetes-models (JSON
// schemas generated from Kubernetes' OpenAPI), and reports every field the
// schemas do not know.
//
//   node tests/kube/validate.mjs NPM_DIR < docs.json
//
// stdin: a JSON array of objects (kind: List is checked item by item).
// stdout: one line per problem ("doc 2 Deployment/web: /spec/... must be
// string", "... unknown field /spec/template/spec/containers/0/bogus");
// exit status 0 when there is none, 1 otherwise, 2 on a usage error.
//
// Unknown fields: the compiled validators read every property their schema
// defines (`data.args`, `data.command`, ...) and every key of a map, so the
// objects are wrapped in Proxies that record what was read; a key that the
// validator never read in an object it did read is not in the schema.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const npm = process.argv[2];
if (!npm) {
  console.log("usage: node validate.mjs NPM_DIR < docs.json");
  process.exit(2);
}
const root = path.join(npm, "node_modules", "kubernetes-models");
const load = (rel) => import(pathToFileURL(path.join(root, rel)).href);

function groupDir(apiVersion) {
  const [g, v] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  return { dir: g ? `${g}/${v}` : v, group: g, version: v };
}

function schemaName(group, version, kind) {
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const g = group === "" ? "Core" : cap(group.split(".")[0]);
  return `IoK8sApi${g}${cap(version)}${kind}.js`;
}

function unknownFields(validate, obj) {
  const records = [];
  const proxies = new Map();
  const wrap = (v, p) => {
    if (v === null || typeof v !== "object") return v;
    if (proxies.has(v)) return proxies.get(v);
    const touched = new Set();
    records.push({ target: v, path: p, touched });
    const px = new Proxy(v, {
      get(t, k, r) {
        if (typeof k === "string") touched.add(k);
        const x = Reflect.get(t, k, r);
        return typeof k === "string" && x !== null && typeof x === "object"
          ? wrap(x, `${p}/${k}`)
          : x;
      },
    });
    proxies.set(v, px);
    return px;
  };
  validate(wrap(obj, ""));
  const out = [];
  for (const { target, path: p, touched } of records) {
    if (Array.isArray(target) || touched.size === 0) continue;
    for (const k of Object.keys(target)) if (!touched.has(k)) out.push(`${p}/${k}`);
  }
  return out;
}

async function check(obj, where, problems) {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    problems.push(`${where}: no apiVersion or kind`);
    return;
  }
  if (kind === "List") {
    for (const [i, item] of (obj.items || []).entries())
      await check(item, `${where} item ${i}`, problems);
    return;
  }
  const { dir, group, version } = groupDir(apiVersion);
  let Model, schema;
  try {
    Model = (await load(`${dir}/${kind}.js`))[kind];
  } catch {
    problems.push(`${where}: kubernetes-models knows no ${apiVersion} ${kind}`);
    return;
  }
  const name = `${where} ${kind}/${obj.metadata?.name ?? "?"}`;
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
    return;
  }
  try {
    schema = (await load(`_schemas/${schemaName(group, version, kind)}`)).validate;
  } catch {
    problems.push(`${name}: no schema file for the unknown-field check`);
    return;
  }
  const known = new Set(["apiVersion", "kind", "metadata", "spec", "status", "data",
    "stringData", "type", "immutable", "binaryData", "rules", "subjects", "roleRef",
    "webhooks", "secrets", "imagePullSecrets", "automountServiceAccountToken"]);
  for (const k of Object.keys(obj)) if (!known.has(k)) problems.push(`${name}: unknown field /${k}`);
  for (const f of unknownFields(schema, structuredClone(obj)))
    problems.push(`${name}: unknown field ${f}`);
}

const docs = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const [i, d] of docs.entries()) await check(d, `doc ${i + 1}`, problems);
for (const p of problems) console.log(p);
process.exit(problems.length ? 1 : 0);
