// Whether a suite that needs this machine's privileges or tools may be skipped. A developer
// without root or Go sees one line and the rest of `npm test` runs; on CI (CI set, as the CI run
// does) or with CONFLUX_REQUIRE_CLUSTER=1 (.ci/run sets it) nothing may be skipped: a machine
// that cannot run a suite is a broken set-up, and the suite fails at once saying why.

/** True when the test process must run every suite (CI, or CONFLUX_REQUIRE_CLUSTER=1). */
export function suitesRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== 'false' && env.CI !== '0';
  return ci || env.CONFLUX_REQUIRE_CLUSTER === '1';
}

/**
 * For `describe.skipIf(skipUnless(canRun, file, why))`: false when the suite can run; otherwise
 * a warning and true (skip), or, where suites are required, an error that fails the file.
 */
export function skipUnless(
  canRun: boolean,
  file: string,
  why: string,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (canRun) return false;
  if (suitesRequired(env)) {
    throw new Error(
      `${file} cannot run on this machine (${why}), and CI or CONFLUX_REQUIRE_CLUSTER=1 requires every suite: ` +
        'run as root with `bash scripts/prepare-tests.sh` done (Debian packages and the Kubernetes build)',
    );
  }
  console.warn(`${file} skipped: ${why}`);
  return true;
}
