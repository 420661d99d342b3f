// The smallest Deno HTTP server (Deno.serve): what bench/deno.sh measures, natively and
// under kvmserver. Deno.args[0]: the TCP port.
Deno.serve({ hostname: "127.0.0.1", port: Number(Deno.args[0]), onListen() {} },
           () => new Response("Hello, World!\n"));
