// Projected ServiceAccount tokens, as the kubelet's token manager gets them: a TokenRequest bound
// to the pod (so the token dies with it, and NodeRestriction accepts it), with the volume's
// audience and expiration, cached and renewed once 80% of its lifetime has passed or it is older
// than 24 hours.

export interface TokenRequestSpec {
  namespace: string;
  serviceAccount: string;
  audience?: string;
  expirationSeconds: number;
  pod: { name: string; uid: string };
}

export interface TokenApi {
  /** POST serviceaccounts/<sa>/token; returns the token and when it expires. */
  requestToken(spec: TokenRequestSpec): Promise<{ token: string; expiresAt: Date }>;
}

interface Cached {
  token: string;
  issuedAt: number;
  expiresAt: number;
}

const DAY = 24 * 3600 * 1000;

/** True when the kubelet would request a new token. */
export function needsRefresh(c: { issuedAt: number; expiresAt: number }, now: number): boolean {
  const ttl = c.expiresAt - c.issuedAt;
  return now > c.expiresAt || now - c.issuedAt > 0.8 * ttl || now - c.issuedAt > DAY;
}

export class TokenCache {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly api: TokenApi,
    private readonly now: () => number = Date.now,
  ) {}

  async get(spec: TokenRequestSpec): Promise<string> {
    const key = JSON.stringify([
      spec.namespace,
      spec.serviceAccount,
      spec.audience ?? '',
      spec.expirationSeconds,
    ]);
    const hit = this.cache.get(key);
    if (hit && !needsRefresh(hit, this.now())) return hit.token;
    const issuedAt = this.now();
    try {
      const { token, expiresAt } = await this.api.requestToken(spec);
      this.cache.set(key, { token, issuedAt, expiresAt: expiresAt.getTime() });
      return token;
    } catch (err) {
      // A token that has not expired yet keeps working while the API is unreachable.
      if (hit && this.now() < hit.expiresAt) return hit.token;
      throw err;
    }
  }
}
