// Validates an exported document with a standard tool and prints one JSON line:
//   node validate.js asyncapi FILE   the official AsyncAPI parser (@asyncapi/parser): every
//                                    diagnostic with its severity (0 error, 1 warning, 2 info,
//                                    3 hint) and path; `ok` when there is no error.
//   node validate.js openapi FILE    @apidevtools/swagger-parser: validation against the
//                                    OpenAPI 3.1 schema with every $ref resolved.
// Exit code 0 when the document is valid, 1 when not, 2 on a usage error.

'use strict';

const fs = require('fs');

async function asyncapi(file) {
  const { Parser } = require('@asyncapi/parser');
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'));
  const found = diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join('.'),
  }));
  const ok = document !== undefined && !found.some((d) => d.severity === 0);
  const summary = ok
    ? {
        version: document.version(),
        operations: document.operations().all().map((o) => o.id()).sort(),
        servers: document.servers().all().map((s) => s.id()).sort(),
      }
    : undefined;
  return { ok, diagnostics: found, summary };
}

async function openapi(file) {
  const module = await import('@apidevtools/swagger-parser');
  const SwaggerParser = module.default || module;
  try {
    const api = await SwaggerParser.validate(file);
    return { ok: true, openapi: api.openapi, paths: Object.keys(api.paths).sort() };
  } catch (error) {
    return { ok: false, error: String(error.message || error) };
  }
}

async function main() {
  const [kind, file] = process.argv.slice(2);
  const run = { asyncapi, openapi }[kind];
  if (!run || !file) {
    console.error('usage: node validate.js asyncapi|openapi FILE');
    process.exit(2);
  }
  const result = await run(file);
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

main().catch((error) => {
  console.log(JSON.stringify({ ok: false, error: String(error && error.stack) }));
  process.exit(1);
});
