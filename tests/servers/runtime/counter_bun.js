// A Bun HTTP server (Bun.serve) that counts the requests it has served: under
// `kvmserver -e` every request starts from the frozen image, so it always answers 1 (2 after
// one warm-up request). argv[2]: the TCP port.
let served = 0;
Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.argv[2]),
  fetch() {
    served++;
    return new Response(`bun served ${served}\n`);
  },
});
