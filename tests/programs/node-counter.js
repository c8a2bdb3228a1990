// node-counter.js: a node program on libuv's event loop and thread pool, for the restart tests.
// Every 50 ms a timer prints
//   TICK <n> shared=<S> sum=<S> bad=<n> counts=<timer ticks>,<pool jobs done>
// and hands a key derivation (crypto.pbkdf2) to libuv's thread pool; bad counts results that are wrong.
// Prints "READY <pid>" first.
const crypto = require('crypto');
const expected = crypto.pbkdf2Sync('secret', 'salt', 1000, 16, 'sha256').toString('hex');
let ticks = 0, done = 0, bad = 0;
console.log(`READY ${process.pid}`);
setInterval(() => {
  ticks++;
  crypto.pbkdf2('secret', 'salt', 1000, 16, 'sha256', (err, key) => {
    if (err || key.toString('hex') !== expected) bad++;
    done++;
  });
  const sum = ticks + done;
  console.log(`TICK ${ticks} shared=${sum} sum=${sum} bad=${bad} counts=${ticks},${done}`);
}, 50);
