'use strict';
// Applies deltas produced by pushwire's Go encoders with the npm decoders real clients use,
// for sdkcompat/delta_test.go (TestDeltaInterop):
//   node delta/apply.js <dir>
// <dir>/cases.json lists case ids; for each id the directory holds <id>.base, <id>.target,
// <id>.fossil (our Fossil delta) and <id>.vcdiff (our VCDIFF delta). This writes
//   <id>.fossil.out   fossil-delta applyDelta(base, delta)       (checksum verified)
//   <id>.vcdiff.out   @ably/vcdiff-decoder decode(delta, base)
//   <id>.fossil.npm   fossil-delta createDelta(base, target)     (for our Go decoder)
// or <name>.err holding the error message when a library throws. The Go test compares bytes.
const fs = require('fs');
const path = require('path');
const fossil = require('fossil-delta');
const vcdiff = require('@ably/vcdiff-decoder');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node delta/apply.js <dir>');
  process.exit(2);
}
const ids = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8'));
const read = (name) => new Uint8Array(fs.readFileSync(path.join(dir, name)));
let failures = 0;

function attempt(name, fn) {
  try {
    fs.writeFileSync(path.join(dir, name), Buffer.from(fn()));
  } catch (e) {
    failures++;
    fs.writeFileSync(path.join(dir, name + '.err'), String((e && e.stack) || e));
  }
}

for (const id of ids) {
  const base = read(id + '.base');
  const target = read(id + '.target');
  attempt(id + '.fossil.out', () => fossil.applyDelta(base, read(id + '.fossil')));
  attempt(id + '.vcdiff.out', () => vcdiff.decode(read(id + '.vcdiff'), base));
  attempt(id + '.fossil.npm', () => fossil.createDelta(base, target));
}
console.log(`applied ${ids.length} cases with fossil-delta and @ably/vcdiff-decoder; ${failures} library errors`);
