// Parse each Mermaid file named on the command line with Mermaid's own parser (no browser: jsdom stands in).
// Prints "ok FILE TYPE" or "error FILE: MESSAGE" per file; exits 1 when any file does not parse.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, 'utf8'));
    console.log(`ok ${file} ${result.diagramType}`);
  } catch (error) {
    failed += 1;
    console.log(`error ${file}: ${String(error?.message ?? error).split('\n').join(' | ')}`);
  }
}
process.exit(failed ? 1 : 0);
