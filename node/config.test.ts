import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const dev = ['--dev-insecure'];

describe('configuration', () => {
  it('takes flags over environment variables and fills defaults', () => {
    const c = loadConfig([...dev, '--api-addr', '127.0.0.1:9000'], {
      CONFLUX_API_ADDR: '127.0.0.1:1',
      CONFLUX_NODE_ID: 'n1',
    });
    expect(c.apiAddr).toBe('127.0.0.1:9000');
    expect(c.nodeId).toBe('n1');
    expect(c.advertiseApiAddr).toBe('127.0.0.1:9000');
    expect(c.maxValueBytes).toBe(1024 * 1024);
    expect(c.quotaBytes).toBeUndefined(); // chosen at start from the memory limit
    expect(c).toMatchObject({
      maxResponseBytes: 16 * 1024 * 1024,
      maxConnections: 2048,
      maxConnectionsPerClient: 512,
      maxNewConnectionsPerSecond: 500,
      maxWatchers: 1024,
      maxWatchersPerClient: 256,
      readHeaderTimeoutMs: 10_000,
      readTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      snapshotLogMib: 64,
    });
  });

  it('bounds the log that triggers a snapshot between 1 MiB and 1 GiB', () => {
    expect(loadConfig([...dev, '--snapshot-log-mib', '16'], {}).snapshotLogMib).toBe(16);
    for (const bad of ['0', '2048', '1.5', 'lots']) {
      expect(() => loadConfig([...dev, '--snapshot-log-mib', bad], {})).toThrow(/--snapshot-log-mib/);
    }
  });

  it('parses the static initial cluster', () => {
    const c = loadConfig(
      [
        ...dev,
        '--node-id',
        'n1',
        '--initial-cluster',
        'n1=127.0.0.1:7001/127.0.0.1:8001/127.0.0.1:9001,n2=127.0.0.1:7002/127.0.0.1:8002',
      ],
      {},
    );
    expect(c.initialCluster).toEqual({
      n1: { raft: '127.0.0.1:7001', api: '127.0.0.1:8001', admin: '127.0.0.1:9001' },
      n2: { raft: '127.0.0.1:7002', api: '127.0.0.1:8002', admin: '' },
    });
  });

  it.each([
    [['--api-addr', 'nope'], /--api-addr \(CONFLUX_API_ADDR\): expected host:port/],
    [['--api-addr', '127.0.0.1:70000'], /port out of range/],
    [['--tick-ms', '-5'], /--tick-ms/],
    [['--node-id', 'Bad_Id'], /--node-id/],
    [['--initial-cluster', 'n1=oops'], /--initial-cluster.*not id=raftHost:port\/apiHost:port/],
    [['--unknown-flag'], /unknown-flag/],
    [['--bootstrap-expect', '3', '--join', '127.0.0.1:1'], /--join.*choose one way to form the cluster/],
    [['--backup-destination', 'ftp://x'], /--backup-destination.*s3:\/\/bucket/],
    [
      ['--read-header-timeout-ms', '5000', '--read-timeout-ms', '1000'],
      /--read-header-timeout-ms.*must not exceed/,
    ],
    [['--max-response-bytes', '1000'], /--max-response-bytes.*at least twice --max-value-bytes/],
    [
      ['--max-watchers', '10', '--max-watchers-per-client', '11'],
      /--max-watchers-per-client.*must not exceed/,
    ],
    [['--idle-timeout-ms', '10'], /--idle-timeout-ms/],
  ])('refuses %j with a message naming the setting', (args, message) => {
    expect(() => loadConfig([...dev, ...args], {})).toThrow(message);
  });

  it('refuses --dev-insecure on a non-loopback address', () => {
    expect(() => loadConfig([...dev, '--api-addr', '0.0.0.0:8080'], {})).toThrow(
      /dev-insecure serves plain HTTP and is refused on 0.0.0.0:8080/,
    );
  });

  it.each([
    [
      ['--advertise-raft-addr', '10.0.0.5:7000'],
      /non-loopback address 10\.0\.0\.5:7000 in --advertise-raft-addr/,
    ],
    [['--advertise-api-addr', 'db-0.db.svc:8080'], /db-0\.db\.svc:8080 in --advertise-api-addr/],
    [['--join', '192.168.1.4:8443'], /192\.168\.1\.4:8443 in --join/],
    [
      ['--initial-cluster', 'a=127.0.0.1:7000/127.0.0.1:8080,b=10.1.2.3:7000/127.0.0.1:8081'],
      /10\.1\.2\.3:7000 in --initial-cluster \(b\)/,
    ],
    [['--join', '10.78.0.1:8443', '--dev-insecure-networks', '10.77.0.0/16'], /10\.78\.0\.1:8443 in --join/],
  ])('--dev-insecure refuses to dial or advertise %j in plain text', (args, message) => {
    expect(() => loadConfig([...dev, ...args], {})).toThrow(message);
  });

  it('--dev-insecure dials loopback, and an isolated test network only when named', () => {
    const ok = loadConfig(
      [...dev, '--join', '127.0.0.2:8443', '--advertise-raft-addr', 'localhost:7000'],
      {},
    );
    expect(ok.join).toBe('127.0.0.2:8443');
    const netns = loadConfig(
      [...dev, '--dev-insecure-networks', '10.77.0.0/16', '--advertise-raft-addr', '10.77.3.1:7000'],
      {},
    );
    expect(netns.advertiseRaftAddr).toBe('10.77.3.1:7000');
    expect(() => loadConfig([...dev, '--dev-insecure-networks', '10.77.0.0/33'], {})).toThrow(
      /--dev-insecure-networks.*not an IPv4 network/,
    );
    // Listeners stay loopback whatever networks are named.
    expect(() =>
      loadConfig([...dev, '--dev-insecure-networks', '10.77.0.0/16', '--api-addr', '10.77.3.1:8080'], {}),
    ).toThrow(/refused on 10\.77\.3\.1:8080/);
  });

  it('requires TLS unless --dev-insecure', () => {
    expect(() => loadConfig([], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--tls-cert', 'a.pem'], {})).toThrow(/together/);
  });
});
