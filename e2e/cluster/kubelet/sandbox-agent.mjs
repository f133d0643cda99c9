// The pod sandbox's resident process (what a pause container is to a real runtime, plus the
// prober): started once per pod inside its network namespace, it runs the kubelet's httpGet and
// tcpSocket probes from there, so they reach the pod's IP on the pod's network. Requests and
// answers are JSON lines on stdin/stdout:
//   {"id":1,"kind":"http","scheme":"HTTPS","host":"10.1.2.3","port":8080,"path":"/readyz",
//    "headers":{"X":"y"},"timeoutMs":1000}
//   {"id":2,"kind":"tcp","host":"10.1.2.3","port":7000,"timeoutMs":1000}
//   -> {"id":1,"ok":true,"message":"HTTP 200"}
// It exits when stdin closes (the kubelet went away).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

function reply(id, ok, message) {
  process.stdout.write(`${JSON.stringify({ id, ok, message })}\n`);
}

function http(r) {
  const https = String(r.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
  let done = false;
  const finish = (ok, message) => {
    if (done) return;
    done = true;
    reply(r.id, ok, message);
  };
  const req = (https ? httpsRequest : httpRequest)(
    {
      host: r.host,
      port: r.port,
      path: r.path || '/',
      method: 'GET',
      headers: { 'user-agent': 'kube-probe/1.37', accept: '*/*', ...(r.headers ?? {}) },
      timeout: r.timeoutMs,
      agent: false,
      // As the kubelet: HTTPS probes do not verify the certificate.
      ...(https ? { rejectUnauthorized: false } : {}),
    },
    (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      finish(code >= 200 && code < 400, `HTTP probe failed with statuscode: ${code}`);
    },
  );
  req.on('timeout', () => req.destroy(new Error(`context deadline exceeded (${r.timeoutMs} ms)`)));
  req.on('error', (e) =>
    finish(false, `Get "${https ? 'https' : 'http'}://${r.host}:${r.port}${r.path}": ${e.message}`),
  );
  req.end();
}

function tcp(r) {
  let done = false;
  const socket = connect({ host: r.host, port: r.port });
  const finish = (ok, message) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    reply(r.id, ok, message);
  };
  const timer = setTimeout(() => finish(false, `dial tcp ${r.host}:${r.port}: i/o timeout`), r.timeoutMs);
  socket.once('connect', () => finish(true, 'connected'));
  socket.once('error', (e) => finish(false, `dial tcp ${r.host}:${r.port}: ${e.message}`));
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let r;
  try {
    r = JSON.parse(line);
  } catch {
    return;
  }
  if (r.kind === 'http') http(r);
  else if (r.kind === 'tcp') tcp(r);
  else reply(r.id, false, `unknown probe kind ${r.kind}`);
});
lines.on('close', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
