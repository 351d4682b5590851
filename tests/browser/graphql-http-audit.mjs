// The graphql-http library's audit suite (the GraphQL-over-HTTP spec's
// MUST and SHOULD rules) against a running server:
//
//   node tests/browser/graphql-http-audit.mjs http://127.0.0.1:8000/graphql
//
// Prints one JSON line {"ok": n, "warnings": [...], "errors": [...]} and
// exits 0 only when there is no warning and no error.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!/^https?:\/\//.test(url || '')) {
  console.error('usage: node graphql-http-audit.mjs <graphql-url>');
  process.exit(2);
}
const results = await auditServer({ url });
const describe = (result) => ({ id: result.id, name: result.name, reason: result.reason });
const summary = {
  ok: results.filter((result) => result.status === 'ok').length,
  warnings: results.filter((result) => result.status === 'warn').map(describe),
  errors: results.filter((result) => result.status === 'error').map(describe),
};
console.log(JSON.stringify(summary));
process.exit(summary.warnings.length + summary.errors.length === 0 ? 0 : 1);
