// A Bun HTTP server that answers with fresh random values from each of its APIs, and its
// pid: under `kvmserver -e` no two requests may see the same cryptographic value (see
// tests/e2e/test_randomness.py). Math.random is non-cryptographic: its state is in the frozen
// image, so it is reported but not expected to differ. argv[2]: the TCP port.
const crypto = require('crypto');
const fs = require('fs');
Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.argv[2]),
  fetch() {
    const web = new Uint8Array(8);
    crypto.getRandomValues(web);
    const fields = {
      pid: fs.readlinkSync('/proc/self'),
      uuid: crypto.randomUUID(),
      bytes: crypto.randomBytes(8).toString('hex'),
      web: Buffer.from(web).toString('hex'),
      math: Math.random(),
    };
    return new Response(Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ') + '\n');
  },
});
