'use strict';
// What the two Node contenders of the verification benchmark share: the
// command line, the delivery, the checks and the timing. Each contender
// passes its verifier, made once from the secret:
//
//   require('./harness').run((secret) => (body, headers) => event)
//
// The verifier returns the decoded event or throws. The delivery's raw
// body is a Buffer, as a Node HTTP server receives it (express.raw() or
// the request's 'data' chunks); the headers an object with lower-case
// names, as node:http gives them. Command line:
//
//   --body FILE --secret S --id ID --timestamp TS --signature SIG --type T
//   --count N [--warmup W]
//
// W untimed verifies, then N timed ones. Prints
//
//   RESULT cpu_seconds=T seconds=S verifies=N
//
// Before the timed loop, a copy of the body with its middle byte's lowest
// bit flipped must throw, and the event must carry type T.
const fs = require('node:fs');

function options(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument: ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  return o;
}

function run(make) {
  const o = options(process.argv.slice(2));
  const count = Number(o.count);
  const warmup = Number(o.warmup || 0);
  const body = fs.readFileSync(o.body);
  const headers = {
    'content-type': 'application/json',
    'webhook-id': o.id,
    'webhook-timestamp': o.timestamp,
    'webhook-signature': o.signature,
  };
  const verify = make(o.secret);

  const tampered = Buffer.from(body);
  tampered[tampered.length >> 1] ^= 1;
  let refused = false;
  try {
    verify(tampered, headers);
  } catch (e) {
    refused = true;
  }
  if (!refused) throw new Error('a tampered body verified');
  const event = verify(body, headers);
  if (!event || event.type !== o.type) throw new Error(`the decoded event has type ${event && event.type}`);

  let last;
  for (let i = 0; i < warmup; i++) last = verify(body, headers);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) last = verify(body, headers);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  if (count > 0 && last.type !== o.type) throw new Error('the last event differs');
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  process.stdout.write(`RESULT cpu_seconds=${cpuSeconds.toFixed(6)} seconds=${seconds.toFixed(6)} verifies=${count}\n`);
}

module.exports = { run };
