// A Node.js HTTP server that answers with fresh random values from each of its APIs, and
// its pid: under `kvmserver -e` no two requests may see the same cryptographic value (see
// tests/e2e/test_randomness.py). Math.random is non-cryptographic: its state is in the frozen
// image, so it is reported but not expected to differ. argv[2]: the TCP port.
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
http.createServer((req, res) => {
  const web = new Uint8Array(8);
  crypto.webcrypto.getRandomValues(web);
  const fields = {
    pid: fs.readlinkSync('/proc/self'),   // process.pid is read once, at start
    uuid: crypto.randomUUID(),
    uuid_nocache: crypto.randomUUID({ disableEntropyCache: true }),
    bytes: crypto.randomBytes(8).toString('hex'),
    web: Buffer.from(web).toString('hex'),
    math: Math.random(),
  };
  res.end(Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ') + '\n');
}).listen(Number(process.argv[2]), '127.0.0.1');
