'use strict';
// Sequential creates written by hand with Node's fetch (undici's default
// agent, which keeps the connection alive). A peer of bench/creates.lua, run
// by bench/run.lua (from the repository root) under /usr/bin/node:
//
//   node bench/creates_node.js --url URL --key KEY --agent UA --body JSON --count N [--warmup W]
//
// Per create: fetch() POSTs the body (the string given, what cerca sends)
// with the headers cerca sends and a fresh crypto.randomUUID() as the
// Idempotency-Key, then the status is checked and res.json() decodes the
// answer. Prints
//
//   RESULT connects=C cpu_seconds=T creates=N seconds=S
//
// S is the wall time of the timed creates, T the process's CPU time over
// them, C the connections undici opened meanwhile (its
// 'undici:client:connected' diagnostics channel). Any failed create aborts
// the run with a message.
const crypto = require('node:crypto');
const dc = require('node:diagnostics_channel');

const o = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument: ${argv[i]}`);
  o[argv[i].slice(2)] = argv[i + 1];
}
const count = Number(o.count);
const warmup = Number(o.warmup || 0);
const url = `${o.url}/fleets/fleet_bench/webhooks`;
const body = o.body;
const auth = `Bearer ${o.key}`;

let connects = 0;
dc.subscribe('undici:client:connected', () => { connects += 1; });

async function create() {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'idempotency-key': crypto.randomUUID(),
      authorization: auth,
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': o.agent,
    },
    body,
  });
  if (res.status !== 201) throw new Error(`create failed: HTTP ${res.status}: ${await res.text()}`);
  const sub = await res.json();
  if (typeof sub.id !== 'string') throw new Error('create failed: no subscription in the answer');
}

(async () => {
  for (let i = 0; i < warmup; i++) await create();
  const connects0 = connects;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await create();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  console.log(`RESULT connects=${connects - connects0} cpu_seconds=${((cpu.user + cpu.system) / 1e6).toFixed(6)}`
    + ` creates=${count} seconds=${seconds.toFixed(6)}`);
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
