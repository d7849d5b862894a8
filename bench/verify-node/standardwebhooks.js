'use strict';
// The Standard Webhooks reference library for Node (npm standardwebhooks,
// the version of package-lock.json, installed by `npm ci`): one Webhook
// made from the secret, then `wh.verify(body, headers)` per delivery, which
// checks the timestamp and the signature and returns the parsed JSON. Run
// by bench/run.lua through harness.js.
const { Webhook } = require('standardwebhooks');
const { run } = require('./harness');

run((secret) => {
  const wh = new Webhook(secret);
  return (body, headers) => wh.verify(body, headers);
});
