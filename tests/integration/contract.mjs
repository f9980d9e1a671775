// The OpenAPI contract, enforced on every response the suites see: each
// (method, path, status) must be documented, and each JSON body must validate
// against its schema (JSON Schema 2020-12, as OpenAPI 3.1 uses).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const root = resolve(import.meta.dirname, '..', '..');
export const specText = readFileSync(join(root, 'openapi', 'openapi.yaml'), 'utf8');
export const spec = parse(specText, { maxAliasCount: -1 });

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: 'spec', components: spec.components });

const routes = Object.entries(spec.paths).map(([p, item]) => ({
  template: p,
  re: new RegExp('^' + p.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  item,
}));

// Follow a $ref inside the spec ("#/components/responses/NotFound").
const deref = (o) => {
  while (o && o.$ref) o = o.$ref.slice(2).split('/').reduce((a, k) => a[k], spec);
  return o;
};

const cache = new Map();
function validator(schema, key) {
  if (!cache.has(key)) {
    // Re-root local refs at the registered copy of the components.
    const s = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"spec#/components/'));
    cache.set(key, ajv.compile(s));
  }
  return cache.get(key);
}

export function checkResponse(method, url, status, contentType, body) {
  const path = new URL(url, 'http://x').pathname;
  const route = routes.find((r) => r.re.test(path));
  if (!route) {
    // The router's answer to a path it does not know: a 404 problem.
    if (status !== 404) throw new Error(`contract: ${method} ${path} is not in openapi.yaml`);
    if (body !== null && body !== undefined) {
      const v = validator(spec.components.schemas.Problem, 'problem');
      if (!v(body)) throw new Error(`contract: a 404 body is not a problem: ${ajv.errorsText(v.errors)}`);
    }
    return;
  }
  const m = method === 'HEAD' ? 'get' : method.toLowerCase();
  const op = route.item[m];
  if (!op) {
    if (status === 405) return; // the router's answer to a method the path lacks
    throw new Error(`contract: ${method} ${route.template} is not in openapi.yaml`);
  }
  const resp = deref(op.responses[String(status)]);
  if (!resp) throw new Error(`contract: ${method} ${route.template} answered ${status}, which openapi.yaml does not list`);
  if (body === null || body === undefined || method === 'HEAD') return;
  const type = (contentType || '').split(';')[0].trim();
  const media = resp.content?.[type];
  if (!media) throw new Error(`contract: ${method} ${route.template} ${status} answered ${type}, not in openapi.yaml`);
  const v = validator(media.schema, `${m} ${route.template} ${status} ${type}`);
  if (!v(body)) {
    throw new Error(`contract: ${method} ${route.template} ${status} body does not match its schema: ` +
      ajv.errorsText(v.errors) + `\n${JSON.stringify(body).slice(0, 400)}`);
  }
}
