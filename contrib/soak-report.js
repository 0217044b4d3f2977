// `make soak`'s summary: reads what the suites recorded in build/reliability/ (figures files from
// test/helpers/diagnostics.ts recordFigures, jest's --json results) and prints one markdown
// report — the machine, each suite's pass/fail counts, and the figures docs/reliability.md quotes.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = path.resolve(__dirname, '..', 'build', 'reliability');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const out = [];
const cpu = os.cpus()[0];
out.push('# make soak', '');
out.push(`- when: ${new Date().toISOString()}`);
out.push(`- machine: ${os.cpus().length} × ${cpu ? cpu.model : '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, kernel ${os.release()}, node ${process.version}`);
out.push(`- load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (the machine is shared: see each suite's own figure)`);
out.push('');
out.push('## Suites', '', '| suite | passed | failed | seconds |', '|---|---|---|---|');
for (const f of files.filter((f) => f.startsWith('jest-'))) {
  const j = read(f);
  for (const s of j.testResults) {
    const passed = s.assertionResults.filter((a) => a.status === 'passed').length;
    const failed = s.assertionResults.filter((a) => a.status === 'failed').length;
    out.push(`| ${path.relative(path.resolve(__dirname, '..'), s.name)} | ${passed} | ${failed} | ${Math.round((s.endTime - s.startTime) / 1000)} |`);
  }
}
out.push('', '## Figures', '');
for (const f of files.filter((f) => !f.startsWith('jest-') && f.endsWith('.json'))) {
  out.push(`### ${f.replace(/\.json$/, '')}`, '', '```json', JSON.stringify(read(f), null, 1), '```', '');
}
const text = out.join('\n');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'summary.md'), text);
process.stdout.write(`${text}\n`);
