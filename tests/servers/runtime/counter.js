// A Node.js HTTP server that counts the requests it has served: under `kvmserver -e` every
// request starts from the frozen image, so it always answers 1. argv[2]: the TCP port.
const http = require('http');
let served = 0;
http.createServer((req, res) => {
  served++;
  res.end(`node served ${served}\n`);
}).listen(Number(process.argv[2]), '127.0.0.1');
