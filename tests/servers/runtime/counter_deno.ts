// A Deno HTTP server (Deno.serve) that counts the requests it has served: under
// `kvmserver -e` every request starts from the frozen image, so it always answers 1 (2 after
// one warm-up request). Deno.args[0]: the TCP port.
let served = 0;
Deno.serve({ hostname: "127.0.0.1", port: Number(Deno.args[0]), onListen() {} }, () => {
  served++;
  return new Response(`deno served ${served}\n`);
});
