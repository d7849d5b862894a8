'use strict';
// The hand-written Node verifier: Standard Webhooks v1 with node:crypto,
// as the specification describes it. The secret is decoded once; each
// verify reads the three headers, checks the timestamp (300 s either way),
// computes HMAC-SHA256 of `id.timestamp.` and the raw body, compares it
// with each v1 entry of webhook-signature (base64-decoded) by
// crypto.timingSafeEqual, and returns JSON.parse of the body. Run by
// bench/run.lua through harness.js.
const crypto = require('node:crypto');
const { run } = require('./harness');

const TOLERANCE = 300;

function verifier(secret) {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return function verify(body, headers) {
    const id = headers['webhook-id'];
    const timestamp = headers['webhook-timestamp'];
    const signatures = headers['webhook-signature'];
    if (!id || !timestamp || !signatures) throw new Error('missing header');
    const seconds = Number(timestamp);
    if (!Number.isInteger(seconds) || Math.abs(Date.now() / 1000 - seconds) > TOLERANCE) {
      throw new Error('timestamp outside the tolerance');
    }
    const mac = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
    for (const entry of signatures.split(' ')) {
      const comma = entry.indexOf(',');
      if (comma !== 2 || !entry.startsWith('v1')) continue;
      const candidate = Buffer.from(entry.slice(comma + 1), 'base64');
      if (candidate.length === mac.length && crypto.timingSafeEqual(candidate, mac)) {
        return JSON.parse(body.toString('utf8'));
      }
    }
    throw new Error('no matching signature');
  };
}

run(verifier);
