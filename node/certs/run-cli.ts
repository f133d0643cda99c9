// The certificate CLI's body (cli.ts is the entry point). Exit codes: 0 written (or --help),
// 1 failed (for example files already exist), 2 bad arguments.

import { writeCertBundle } from './bundle.js';
import { parseCliArgs, USAGE } from './cli-args.js';
import { CertError } from './errors.js';
import { type CertKeyPair, generateAdminCert, generateCa, generateNodeCert } from './generate.js';
import { isDnsName, unique } from './names.js';

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseCliArgs(argv);
  if (parsed.kind === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (parsed.kind === 'error') {
    io.stderr(`error: ${parsed.message}`);
    io.stderr(USAGE);
    return 2;
  }
  const { outDir, nodeIds, ipAddresses, dnsNames, validDays, force } = parsed.options;
  try {
    const ca = await generateCa({ commonName: 'conflux-ca', validDays });
    const nodes: Record<string, CertKeyPair> = {};
    for (const nodeId of nodeIds) {
      const ownName = isDnsName(nodeId) ? [nodeId] : [];
      nodes[nodeId] = await generateNodeCert(ca, {
        nodeId,
        dnsNames: unique([...ownName, 'localhost', ...dnsNames]),
        ipAddresses,
        validDays,
      });
    }
    const admin = await generateAdminCert(ca, { commonName: 'conflux-admin', validDays });
    const written = await writeCertBundle(outDir, { ca, nodes, clients: { admin } }, { overwrite: force });
    for (const file of written) io.stdout(`wrote ${file.path} (${file.kind}, mode ${file.mode.toString(8)})`);
    return 0;
  } catch (err) {
    if (err instanceof CertError) {
      io.stderr(`error: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
