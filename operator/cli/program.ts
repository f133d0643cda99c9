// The `conflux` command line (docs/ARCHITECTURE.md §9), built with commander. `runConflux(argv, io)` runs one
// invocation and answers its exit code: 0 done, 1 failed (an API error, an unreachable cluster),
// 2 bad usage. Tests call it in-process with their own io.

import { Command, CommanderError } from 'commander';
import { runCli as runCertsCli } from '../../node/certs/run-cli.js';
import { accessOf, authChange, authStatus } from './auth.js';
import {
  backupCommand,
  leaderShow,
  leaderTransfer,
  nodesAdd,
  nodesRemove,
  restoreCommand,
  scaleCommand,
} from './cluster.js';
import { CliError, type CliIo, type CommandContext, type GlobalOptions, resolveTarget } from './context.js';
import { kvDel, kvGet, kvLs, kvPut, kvWatch } from './kv.js';
import { clusterApply, clusterDelete, clusterEvents, clusterGet, clusterPatch } from './resource.js';
import { statusCommand } from './status.js';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  pollMs?: number;
  signal?: AbortSignal;
}

const HELP_AFTER = `
Targets: by default the local cluster of npm start: its members' admin APIs on
http://127.0.0.1:7301-7303, client APIs on 7201-7203, the control endpoint (scale, cluster) on
7100 (set CONFLUX_BASE_PORT as npm start had it, default 7101, to move them all: API BASE+100+i,
admin BASE+200+i, control BASE-1). Otherwise --admin and --api, each a URL or a comma-separated list of
the members' URLs, with --cert/--key/--ca for TLS (or CONFLUX_ADMIN_URL, CONFLUX_API_URL,
CONFLUX_CERT, CONFLUX_KEY, CONFLUX_CA). A member that does not answer is passed over for the next
(and for the members the cluster itself lists); requests only the leader serves follow it.

--json prints the API's own documents on stdout, and an error as {"error":{"code","message"}} on
stderr. Exit codes: 0 done, 1 failed (an API error, no member reachable, quorum lost), 2 bad usage.`;

export async function runConflux(argv: readonly string[], io: CliIo, run: RunOptions = {}): Promise<number> {
  const env = run.env ?? process.env;
  // The certificate generator parses its own arguments.
  if (argv[0] === 'certs') return runCertsCli(argv.slice(1), io);
  // Known before parsing, so that even a usage error is JSON.
  const jsonErrors = argv.includes('--json');
  const fail = (err: CliError): number => {
    io.stderr(jsonErrors ? JSON.stringify(err.toJson()) : err.message);
    return err.exitCode;
  };

  const program = buildProgram(io, jsonErrors, (cmd) => {
    const target = resolveTarget(targetOptionsOf(cmd), env);
    const ctx: CommandContext = { io, target, pollMs: run.pollMs ?? 500, signal: run.signal };
    return ctx;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CliError) return fail(err);
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0)
        return 0;
      // Commander printed the text already (help shown because a subcommand was missing, or the
      // error); with --json it printed nothing, and the error is a document.
      if (jsonErrors) fail(new CliError(err.message, 2, { code: 'USAGE' }));
      return 2;
    }
    return fail(new CliError(`error: ${(err as Error).message ?? String(err)}`, 1));
  }
}

type ContextOf = (cmd: Command) => CommandContext;

const TARGET_KEYS = ['admin', 'api', 'cert', 'key', 'ca', 'json'] as const;

/** The target options given at any level, the innermost winning. */
function targetOptionsOf(cmd: Command): GlobalOptions {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.unshift(c);
  const out: Record<string, unknown> = {};
  for (const c of chain) {
    const o = c.opts();
    for (const k of TARGET_KEYS) {
      // `nodes add --api` is the new member's address, not the client API URL.
      if (k === 'api' && c.name() === 'add' && c.parent?.name() === 'nodes') continue;
      if (o[k] !== undefined) out[k] = o[k];
    }
  }
  return out as GlobalOptions;
}

/** The target options, accepted before the command (`conflux --json status`) and after it. */
function targetOptions(cmd: Command, withApi = true): Command {
  cmd.option(
    '--admin <urls>',
    "members' admin API URLs, comma-separated (env CONFLUX_ADMIN_URL; default the local cluster)",
  );
  if (withApi)
    cmd.option(
      '--api <urls>',
      "members' client API URLs, comma-separated (env CONFLUX_API_URL; default the local cluster)",
    );
  return cmd
    .option('--cert <file>', 'client certificate for TLS (env CONFLUX_CERT)')
    .option('--key <file>', 'client key for TLS (env CONFLUX_KEY)')
    .option('--ca <file>', 'CA certificate for TLS (env CONFLUX_CA)')
    .option('--json', "print the API's own JSON documents");
}

/** `conflux kv get|put|del|ls|watch`: keys through the client API. */
function addKvCommands(program: Command, contextOf: ContextOf): void {
  const kv = program.command('kv').description('read and write keys through the client API');
  kv.command('get')
    .argument('<key>')
    .option('--serializable', "read this node's state without a ReadIndex round")
    .description("print a key's value")
    .action((key: string, o, cmd: Command) => kvGet(contextOf(cmd), key, o));
  kv.command('put')
    .argument('<key>')
    .argument('[value]')
    .option('--file <path>', 'take the value from a file')
    .option('--cas <modRevision>', "write only if the key's modRevision is this (0: only if absent)")
    .description('write a key')
    .action((key: string, value: string | undefined, o, cmd: Command) =>
      kvPut(contextOf(cmd), key, value, o),
    );
  kv.command('del')
    .alias('delete')
    .argument('<key>')
    .option('--cas <modRevision>', "delete only if the key's modRevision is this")
    .description('delete a key')
    .action((key: string, o, cmd: Command) => kvDel(contextOf(cmd), key, o));
  kv.command('ls')
    .argument('[prefix]')
    .option('--page-size <n>', 'keys per request', '500')
    .option('--serializable', "read this node's state without a ReadIndex round")
    .description('list keys under a prefix (all pages)')
    .action((prefix: string | undefined, o, cmd: Command) => kvLs(contextOf(cmd), prefix, o));
  kv.command('watch')
    .argument('<prefix>')
    .option('--from <revision>', 'start at this revision (default: the next one)')
    .option('--once', 'stop after the first answer')
    .option('--timeout-ms <ms>', 'long-poll timeout per request', '30000')
    .description('print changes under a prefix until Ctrl-C')
    .action((prefix: string, o, cmd: Command) => kvWatch(contextOf(cmd), prefix, o));
}

/** `conflux cluster …`: the ConfluxCluster resource. */
function addClusterCommands(program: Command, contextOf: ContextOf): void {
  const cluster = program
    .command('cluster')
    .description(
      'the ConfluxCluster resource of npm start through its control endpoint (BASE-1), as kubectl does on Kubernetes',
    );
  const ns = (c: Command) => c.option('-n, --namespace <ns>', 'the namespace', 'default');
  ns(cluster.command('get'))
    .argument('[name]', 'one cluster (default: list them)')
    .description("spec, status, members' addresses and recent events (--json: the object)")
    .action((name: string | undefined, o, cmd: Command) => clusterGet(contextOf(cmd), name, o));
  ns(cluster.command('apply'))
    .option('-f, --filename <file>', 'a ConfluxCluster in YAML or JSON (- for stdin)')
    .description('create or update the ConfluxClusters in a file (kubectl apply -f)')
    .action((o, cmd: Command) => clusterApply(contextOf(cmd), o));
  ns(cluster.command('patch'))
    .argument('<name>')
    .option('-p, --patch <json>', `a JSON merge patch, for example '{"spec":{"recovery":null}}'`)
    .description('change the spec with a JSON merge patch; null removes a field (kubectl patch --type merge)')
    .action((name: string, o, cmd: Command) => clusterPatch(contextOf(cmd), name, o));
  ns(cluster.command('delete'))
    .argument('<name>')
    .description('delete a ConfluxCluster: its members stop, their data stays (kubectl delete)')
    .action((name: string, o, cmd: Command) => clusterDelete(contextOf(cmd), name, o));
  ns(cluster.command('events'))
    .argument('<name>')
    .description("the operator's events about a cluster, oldest first (kubectl get events)")
    .action((name: string, o, cmd: Command) => clusterEvents(contextOf(cmd), name, o));
}

/** `conflux auth …`: users and roles of client authorization. */
function addAuthCommands(program: Command, contextOf: ContextOf): void {
  const auth = program
    .command('auth')
    .description('users and roles of client authorization (GET/POST /_cluster/auth)');
  auth
    .command('status')
    .description('whether it is enabled, users, roles')
    .action((_o, cmd: Command) => authStatus(contextOf(cmd)));
  auth
    .command('enable')
    .description('check every client request (needs TLS and a user with the root role)')
    .action((_o, cmd: Command) => authChange(contextOf(cmd), { op: 'enable' }));
  auth
    .command('disable')
    .description('stop checking client requests')
    .action((_o, cmd: Command) => authChange(contextOf(cmd), { op: 'disable' }));
  const user = auth.command('user').description('users, named by the CN of their client certificate');
  user
    .command('add')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) => authChange(contextOf(cmd), { op: 'user-add', user: name }));
  user
    .command('delete')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), { op: 'user-delete', user: name }),
    );
  user
    .command('grant')
    .argument('<name>')
    .argument('<role>', 'a role, or root')
    .action((name: string, role: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), { op: 'user-grant-role', user: name, role }),
    );
  user
    .command('revoke')
    .argument('<name>')
    .argument('<role>')
    .action((name: string, role: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), { op: 'user-revoke-role', user: name, role }),
    );
  const role = auth.command('role').description('roles: read, write or readwrite on key prefixes');
  role
    .command('add')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) => authChange(contextOf(cmd), { op: 'role-add', role: name }));
  role
    .command('delete')
    .argument('<name>')
    .action((name: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), { op: 'role-delete', role: name }),
    );
  role
    .command('grant')
    .argument('<name>')
    .argument('<prefix>', "keys starting with it ('' = all)")
    .argument('<access>', 'read, write or readwrite')
    .action((name: string, prefix: string, access: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), {
        op: 'role-grant',
        role: name,
        permission: { prefix, access: accessOf(access) },
      }),
    );
  role
    .command('revoke')
    .argument('<name>')
    .argument('<prefix>')
    .action((name: string, prefix: string, _o, cmd: Command) =>
      authChange(contextOf(cmd), { op: 'role-revoke', role: name, prefix }),
    );
}

function addLeaderCommands(program: Command, contextOf: ContextOf): void {
  const leader = program
    .command('leader')
    .description('show the leader')
    .action((_o, cmd: Command) => leaderShow(contextOf(cmd)));
  leader
    .command('transfer')
    .argument('[id]', 'the member to hand leadership to (default: the most up-to-date voter)')
    .description('hand leadership to another voter')
    .action((id: string | undefined, _o, cmd: Command) => leaderTransfer(contextOf(cmd), id));
}

function addNodesCommands(program: Command, contextOf: ContextOf): void {
  const nodes = program.command('nodes').description('add or remove members safely');
  nodes
    .command('add')
    .argument('<id>')
    .requiredOption('--api <addr>', "the new member's client API host:port")
    .requiredOption('--raft <addr>', "the new member's Raft host:port")
    .requiredOption('--admin-addr <addr>', "the new member's admin host:port")
    .description('add a member (learner, catch-up, voter) and follow the operation')
    .action((id: string, o, cmd: Command) => nodesAdd(contextOf(cmd), id, o));
  nodes
    .command('remove')
    .argument('<id>')
    .option('--force', 'remove even if the quorum is at risk')
    .description('remove a member and follow the operation')
    .action((id: string, o, cmd: Command) => nodesRemove(contextOf(cmd), id, o));
}

function buildProgram(io: CliIo, jsonErrors: boolean, contextOf: ContextOf): Command {
  const program = new Command('conflux');
  program
    .description('Operate a Conflux cluster: status, keys, scaling, leadership, backups, members')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s.replace(/\n$/, '')),
      writeErr: (s) => {
        if (!jsonErrors) io.stderr(s.replace(/\n$/, ''));
      },
    })
    .showHelpAfterError('(conflux --help for usage)')
    .enablePositionalOptions();
  targetOptions(program).addHelpText('after', HELP_AFTER);

  program
    .command('status')
    .description('members, leader, term, fault tolerance and cluster id (GET /_cluster/status)')
    .action((_o, cmd: Command) => statusCommand(contextOf(cmd)));

  addKvCommands(program, contextOf);

  program
    .command('scale')
    .argument('<replicas>')
    .option('--name <cluster>', 'the ConfluxCluster of npm start', 'local')
    .description(
      "change the local cluster's replicas through npm start's scale endpoint, found from --admin/--api or CONFLUX_BASE_PORT (on Kubernetes: kubectl scale confluxcluster/NAME)",
    )
    .action((replicas: string, o, cmd: Command) => scaleCommand(contextOf(cmd), replicas, o));

  addClusterCommands(program, contextOf);

  addLeaderCommands(program, contextOf);

  addAuthCommands(program, contextOf);

  program
    .command('backup')
    .option('--destination <uri>', "s3://bucket/prefix or file:///path (default: the node's)")
    .option('--force', 'back up even when nothing changed since the newest backup')
    .description('take a backup now (POST /_cluster/backup)')
    .action((o, cmd: Command) => backupCommand(contextOf(cmd), o));

  program
    .command('restore')
    .argument('<uri>')
    .option('--expected-cluster-id <id>', 'refuse unless the backup comes from this cluster')
    .description('restore a backup into the empty node given by --admin (the first of the list)')
    .action((uri: string, o, cmd: Command) => restoreCommand(contextOf(cmd), uri, o));

  addNodesCommands(program, contextOf);

  program
    .command('certs')
    .description('generate a CA, node and admin certificates (conflux certs --help)')
    .allowUnknownOption()
    .argument('[args...]');

  addTargetOptions(program);
  return program;
}

function addTargetOptions(parent: Command): void {
  for (const c of parent.commands) {
    if (c.name() === 'certs') continue;
    if (c.commands.length === 0 || c.name() === 'leader')
      targetOptions(c, !(c.name() === 'add' && parent.name() === 'nodes'));
    addTargetOptions(c);
  }
}
