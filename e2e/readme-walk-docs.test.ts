// What the README, the charts' NOTES and values, and `--help` tell a user, checked against the code:
// every `npx conflux ...` they print names commands and flags the CLI has (from the real
// `conflux ... --help`), the NOTES of helm/conflux name the pods, Services and ports the chart
// renders (the admin API, where /_cluster/status lives, on the Service's admin port), the DNS
// pattern in its values is the one the templates render, and the README's image and sample
// names are the code's. The commands themselves run in e2e/readme-walk.test.ts.

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_IMAGE } from '../operator/api/cluster.js';
import { runConflux } from '../operator/cli/program.js';
import { helm, setValues } from './support/helm.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

async function help(path: string[]): Promise<string> {
  let out = '';
  const code = await runConflux([...path, '--help'], { stdout: (t) => (out += `${t}\n`), stderr: () => {} });
  expect(code, `conflux ${path.join(' ')} --help`).toBe(0);
  return out;
}

/** The subcommands a help text lists. */
function commandsIn(text: string): string[] {
  const section = text.split('\nCommands:\n')[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)]
    .map((m) => m[1] as string)
    .filter((c) => c !== 'help');
}

/** The long options a help text lists. */
function flagsIn(text: string): Set<string> {
  // `conflux certs` parses its own arguments: its usage line names them.
  if (!text.includes('\nOptions:\n')) return new Set([...text.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
  const section = (text.split('\nOptions:\n')[1] ?? '').split('\nCommands:\n')[0] ?? '';
  return new Set([...section.matchAll(/^ {2}(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1] as string));
}

/**
 * Checks one `conflux ARGS` line as a user would type it: the command path exists and every
 * --flag is one of that command's options. Answers problems, empty when the line is right.
 */
async function checkLine(line: string): Promise<string[]> {
  // A placeholder such as `<its api address>` is one value.
  const tokens = line
    .trim()
    .replace(/<[^>]*>/g, (p) => p.replace(/\s+/g, '_'))
    .split(/\s+/);
  const path: string[] = [];
  let text = await help([]);
  // Options given before the command belong to the program.
  let i = 0;
  const problems: string[] = [];
  for (; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t.startsWith('--')) {
      if (!flagsIn(text).has(t.split('=')[0] as string)) problems.push(`${line}: conflux has no ${t}`);
      if (!['--json'].includes(t) && !t.includes('=')) i++; // its value
      continue;
    }
    if (!commandsIn(text).includes(t)) break;
    path.push(t);
    text = await help(path);
    if (commandsIn(text).length === 0) {
      i++;
      break;
    }
  }
  if (path.length === 0) return [`${line}: no conflux command in it`];
  const flags = flagsIn(text);
  for (const t of tokens.slice(i)) {
    if (!t.startsWith('--')) continue;
    const flag = t.split('=')[0] as string;
    if (!flags.has(flag)) problems.push(`${line}: conflux ${path.join(' ')} has no ${flag}`);
  }
  return problems;
}

/** Every `conflux ...` invocation in a text: `npx conflux ARGS` up to a comment, quote or bracket. */
function invocations(text: string): string[] {
  return [...text.matchAll(/npx conflux ((?:[^#`\n)(&|;\\]|\\\n)+)/g)].map((m) =>
    (m[1] as string).replace(/\\\n/g, ' ').trim(),
  );
}

describe('the README and --help', () => {
  it('every `npx conflux` line of the README names a command and flags the CLI has', async () => {
    const lines = invocations(README);
    expect(lines.length).toBeGreaterThan(15);
    const problems = (await Promise.all(lines.map(checkLine))).flat();
    expect(problems).toEqual([]);
  });

  it('the commands the README lists are those of conflux --help', async () => {
    const found = /Commands: (.+?);/s.exec(README)?.[1];
    expect(found).toBeDefined();
    const listed = (found as string).replace(/\([^)]*\)/g, '');
    const top = commandsIn(await help([]));
    for (const m of listed.matchAll(/`([a-z]+)(?: ([a-z|]+))?/g)) {
      const [, cmd, subs] = m as unknown as [string, string, string | undefined];
      expect(top, `README lists ${cmd}`).toContain(cmd);
      for (const sub of subs?.split('|') ?? []) {
        if (!/^[a-z]+$/.test(sub) || sub === cmd) continue;
        expect(commandsIn(await help([cmd])), `README lists ${cmd} ${sub}`).toContain(sub);
      }
    }
    // And every command conflux has is in the README's list.
    for (const cmd of top)
      expect(listed, `conflux ${cmd} is missing from the README's list`).toContain(`\`${cmd}`);
  });

  it('the README says which image members run by default and how to set another', () => {
    expect(README).toContain(`\`${DEFAULT_IMAGE}\``);
    expect(README).toMatch(/`spec\.image`/);
    const sample = parseAllDocuments(
      readFileSync(
        new URL('../config/samples/conflux_v1alpha1_confluxcluster.yaml', import.meta.url),
        'utf8',
      ),
    )[0]?.toJS() as { metadata: { name: string } };
    expect(README).toContain(`kubectl scale confluxcluster/${sample.metadata.name} --replicas=5`);
  });
});

describe('helm/conflux NOTES and values', () => {
  let notes = '';
  let objects: { kind: string; metadata: { name: string }; spec: Record<string, unknown> }[] = [];
  beforeAll(async () => {
    const values = setValues({ 'tls.secretName': 'conflux-tls', replicas: 3 });
    const install = await helm(['install', 'kv', 'helm/conflux', '-n', 'db', '--dry-run=client', ...values]);
    expect(install.code, install.stderr).toBe(0);
    notes = install.stdout.split('\nNOTES:\n')[1] as string;
    const rendered = await helm(['template', 'kv', 'helm/conflux', '-n', 'db', ...values]);
    objects = parseAllDocuments(rendered.stdout)
      .map((d) => d.toJS())
      .filter(Boolean);
  }, 60_000);

  const service = (name: string) =>
    objects.find((o) => o.kind === 'Service' && o.metadata.name === name) as unknown as {
      spec: { ports: { name: string; port: number }[] };
    };

  it('names the pods and Services the chart renders, with their ports', () => {
    const sts = objects.find((o) => o.kind === 'StatefulSet') as unknown as {
      metadata: { name: string };
      spec: { serviceName: string };
    };
    const name = sts.metadata.name; // release kv: kv-conflux
    expect(name).toBe('kv-conflux');
    for (let i = 0; i < 3; i++) expect(notes).toContain(`  ${name}-${i}.${sts.spec.serviceName}.db.svc\n`);
    const ports = Object.fromEntries(service(sts.spec.serviceName).spec.ports.map((p) => [p.name, p.port]));
    expect(notes).toContain(`client API on ${ports.api}`);
    expect(notes).toContain(`admin API on ${ports.admin}`);
    expect(notes).toContain(`Raft on ${ports.raft}`);
    const client = service(name);
    expect(notes).toContain(
      `https://${name}.db.svc:${client.spec.ports.find((p) => p.name === 'api')?.port}`,
    );
    // /_cluster/status is on the admin API.
    for (const m of notes.matchAll(/https:\/\/localhost:(\d+)\/_cluster\/status/g))
      expect(Number(m[1])).toBe(ports.admin);
    expect(notes).toContain(`port-forward pod/${name}-0 ${ports.api} ${ports.admin}`);
    expect(notes).toContain(`--admin https://localhost:${ports.admin} --api https://localhost:${ports.api}`);
  });

  it("every `npx conflux` line of the NOTES and the chart's README has the flags the CLI has", async () => {
    const lines = [...invocations(notes), ...invocations(readFileSync('helm/conflux/README.md', 'utf8'))];
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect((await Promise.all(lines.map(checkLine))).flat()).toEqual([]);
  });

  it("values.yaml's DNS pattern for the certificate is the one the pods advertise", () => {
    const values = readFileSync('helm/conflux/values.yaml', 'utf8');
    const pattern =
      /\((<name>-<i>\.<name>-headless\.<namespace>\.svc), where <name> is the release name when it contains\s+# "conflux", else <release>-conflux/.exec(
        values,
      );
    expect(pattern, 'values.yaml documents the pod DNS names').not.toBeNull();
    const sts = objects.find((o) => o.kind === 'StatefulSet') as unknown as {
      spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
    };
    const env = sts.spec.template.spec.containers[0]?.env ?? [];
    const advertised = env.find((e) => e.name === 'CONFLUX_ADVERTISE_ADMIN_ADDR')?.value;
    // Release "kv" does not contain "conflux": <name> is kv-conflux.
    expect(advertised).toBe('$(POD_NAME).kv-conflux-headless.db.svc:8443');
  });
});
