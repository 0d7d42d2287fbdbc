// Holds N Server-Sent Event streams open on pumptwind's HTTP listener (docs/benchmarks.md,
// "Web app"): GET PATH N times over separate connections, reads and discards what comes,
// prints "open N" once every stream answered 200, then "closed" after stdin ends (or
// MAX_S seconds, the hard bound). Loopback only.
//   node sse_hold.mjs PORT [N] [PATH] [MAX_S]
import http from 'node:http';

const [port, n = '1000', path = '/v1/alerts:watch', maxS = '900'] = process.argv.slice(2);
const want = Number(n);
let open = 0, failed = 0, events = 0;
const reqs = [];
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
function done(code) {
  for (const r of reqs) r.destroy();
  console.log(`closed open=${open} failed=${failed} bytes_events=${events}`);
  process.exit(code);
}
setTimeout(() => done(open === want ? 0 : 1), Number(maxS) * 1000).unref();
let started = 0;
function next() {
  // At most 50 connects in flight: CivetWeb accepts on one thread.
  while (started < want && started - open - failed < 50) {
    started++;
    const req = http.get({ host: '127.0.0.1', port: Number(port), path, agent, headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { failed++; res.resume(); next(); return; }
      open++;
      if (open === want) console.log(`open ${open}`);
      res.on('data', (d) => { events += d.length; });
      next();
    });
    req.on('error', () => { failed++; next(); });
    reqs.push(req);
  }
  if (open + failed === want && open !== want) { console.log(`open ${open} failed ${failed}`); done(1); }
}
next();
process.stdin.on('end', () => done(open === want ? 0 : 1));
process.stdin.resume();
