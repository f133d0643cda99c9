// Helpers for tests that run small Node.js programs inside pod sandboxes.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { PodSandbox } from './pod-network.js';

const run = promisify(execFile);

/** Runs `node -e script` inside the sandbox; resolves with its trimmed stdout. */
export async function nodeIn(sb: PodSandbox, script: string, timeoutMs = 15_000): Promise<string> {
  const [cmd, ...rest] = sb.execPrefix;
  const { stdout } = await run(cmd!, [...rest, process.execPath, '-e', script], { timeout: timeoutMs });
  return stdout.trim();
}

/** Runs a command inside the sandbox; resolves with its stdout. */
export async function execIn(sb: PodSandbox, argv: string[], timeoutMs = 15_000): Promise<string> {
  const [cmd, ...rest] = sb.execPrefix;
  return (await run(cmd!, [...rest, ...argv], { timeout: timeoutMs })).stdout;
}

/** An HTTP server in the sandbox on 0.0.0.0:port answering `hello from <name> to <client ip>`. */
export function serveIn(sb: PodSandbox, name: string, port: number): Promise<ChildProcess> {
  const script = `require('http').createServer((q,r)=>r.end('hello from ${name} to '+q.socket.remoteAddress)).listen(${port},'0.0.0.0',()=>console.log('up'))`;
  const [cmd, ...rest] = sb.execPrefix;
  const child = spawn(cmd!, [...rest, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`server in ${sb.netns} exited with ${code}`)));
  });
}

/** GET from inside the sandbox; names resolve through the sandbox's resolv.conf (getaddrinfo). */
export function httpGetIn(sb: PodSandbox, url: string, extra = ''): Promise<string> {
  const script = `const m=require(${JSON.stringify(url.startsWith('https') ? 'https' : 'http')});m.get(${JSON.stringify(url)},{timeout:5000${extra}},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(r.statusCode+' '+b))}).on('error',e=>{console.error(e.message);process.exit(1)})`;
  return nodeIn(sb, script);
}
