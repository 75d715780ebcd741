import { durationMs, wrapped } from '../translate/protoValues.js';
import type { RouteActionFeature } from './httpFilter.js';

/**
 * The route's `retry_policy`: retries (IrRetry, the Gateway API's HTTPRouteRetry) and the budget of each
 * try (IrTimeouts.backendRequestMs), which Envoy keeps in the same message.
 *
 * - `backendRequestMs` → `per_try_timeout`, the initial try included. It applies even with no retry
 *   conditions (then Envoy makes no retries), and is capped by the route timeout. Envoy reads a per-try
 *   timeout of 0 as unset, which leaves only the route timeout: the Gateway API's "0 disables", so 0 is
 *   simply not written.
 * - A retry retries failed connections (`connect-failure`, and `refused-stream` for HTTP/2 backends),
 *   plus the listed status codes (`retriable-status-codes`), at most `attempts` times after the first
 *   try, waiting at least `backoffMs` before each (Envoy backs off exponentially from there, with
 *   jitter, up to ten times as long, which the spec allows). Without a backoff Envoy's default (25 ms)
 *   applies.
 */
export const retryFeature: RouteActionFeature = {
  name: 'retry',
  routeAction: (r) => {
    const perTry = r.timeouts?.backendRequestMs ?? 0;
    const perTryTimeout = perTry > 0 ? { perTryTimeout: durationMs(perTry) } : {};
    const retry = r.retry;
    if (retry === undefined) return perTry > 0 ? { retryPolicy: perTryTimeout } : {};
    const codes = retry.statusCodes;
    return {
      retryPolicy: {
        retryOn: [
          'connect-failure',
          'refused-stream',
          ...(codes.length > 0 ? ['retriable-status-codes'] : []),
        ].join(','),
        numRetries: wrapped(retry.attempts),
        ...perTryTimeout,
        ...((retry.backoffMs ?? 0) > 0
          ? { retryBackOff: { baseInterval: durationMs(retry.backoffMs ?? 0) } }
          : {}),
        ...(codes.length > 0 ? { retriableStatusCodes: codes } : {}),
      },
    };
  },
};
