// React server-side rendering: every request renders a table of ROWS rows with
// react-dom/server's renderToString (~36 KB of HTML), in production mode. It runs under Node
// (20.19+, which detects this file's module syntax) and Deno (`deno run -A`).
// argv: PORT [NODE_MODULES], NODE_MODULES being where react and react-dom are installed
// (default ~/.cache/kvmserver/react/node_modules, where scripts/install-deps.sh puts them).
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { createRequire } from 'node:module';

const ROWS = 350;
const modules = process.argv[3] ?? path.join(os.homedir(), '.cache/kvmserver/react/node_modules');
try {
  process.env.NODE_ENV = 'production';    // react's index.js picks its build by this
} catch {
  // an environment the runtime will not let us write: the development build then
}
const require = createRequire(path.join(modules, 'index.js'));
const React = require('react');
const { renderToString } = require('react-dom/server');
const h = React.createElement;

function Row({ i }) {
  return h('tr', { className: i % 2 ? 'odd' : 'even' },
    h('td', null, i),
    h('td', null, `item ${i}`),
    h('td', null, (i * 7919 % 1000) / 10),
    h('td', null, h('a', { href: `/item/${i}` }, 'details')));
}

function Page() {
  const rows = [];
  for (let i = 0; i < ROWS; i++)
    rows.push(h(Row, { key: i, i }));
  return h('html', null,
    h('head', null, h('title', null, 'React SSR')),
    h('body', null, h('h1', null, 'Items'),
      h('table', null, h('tbody', null, rows))));
}

http.createServer((req, res) => {
  const html = '<!DOCTYPE html>' + renderToString(h(Page));
  res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}).listen(Number(process.argv[2]), '127.0.0.1');
