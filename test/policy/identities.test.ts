// Identity numbers: derived from the label set (stable without state), collisions probed, numbers handed
// out before kept; what goes into a label set.

import { describe, expect, it } from 'vitest';
import { FIRST_CIDR_IDENTITY, FIRST_LABEL_IDENTITY, IDENTITY_LIMIT } from '../../src/model/policy.js';
import {
  allocateIdentities,
  cidrIdentityKey,
  labelIdentityKey,
  preferredIdentity,
  securityLabels,
} from '../../src/policy/identities.js';

const key = (app: string, ns = 'x') => labelIdentityKey(ns, { app }, { 'kubernetes.io/metadata.name': ns });

describe('identities', () => {
  it('leaves out per-revision and per-pod labels', () => {
    expect(
      securityLabels({
        app: 'web',
        'pod-template-hash': '7d4b9c',
        'controller-revision-hash': 'web-5f',
        'statefulset.kubernetes.io/pod-name': 'web-0',
        'apps.kubernetes.io/pod-index': '0',
        'batch.kubernetes.io/controller-uid': 'u',
        tier: 'front',
      }),
    ).toEqual({ app: 'web', tier: 'front' });
  });

  it('names a label set the same whatever the order of its labels', () => {
    expect(labelIdentityKey('x', { b: '2', a: '1' }, { n: '1', m: '2' })).toBe(
      labelIdentityKey('x', { a: '1', b: '2' }, { m: '2', n: '1' }),
    );
    expect(key('a', 'x')).not.toBe(key('a', 'y'));
  });

  it('derives numbers from the set: the same without any state, in their ranges', () => {
    const keys = ['a', 'b', 'c'].map((a) => key(a));
    const first = allocateIdentities(keys);
    const again = allocateIdentities([...keys].reverse());
    expect(again).toEqual(first);
    for (const k of keys) {
      expect(first.get(k)).toBe(preferredIdentity(k));
      expect(first.get(k)).toBeGreaterThanOrEqual(FIRST_LABEL_IDENTITY);
      expect(first.get(k)).toBeLessThan(FIRST_CIDR_IDENTITY);
    }
    const cidr = allocateIdentities([cidrIdentityKey('10.0.0.0/8')]).get(cidrIdentityKey('10.0.0.0/8')) ?? 0;
    expect(cidr).toBeGreaterThanOrEqual(FIRST_CIDR_IDENTITY);
    expect(cidr).toBeLessThan(IDENTITY_LIMIT);
  });

  it('keeps the numbers handed out before, and probes past a taken number', () => {
    const a = key('a');
    const b = key('b');
    // b held a's preferred number before (a collision resolved earlier): both keep what they had.
    const previous = new Map([[b, preferredIdentity(a)]]);
    const out = allocateIdentities([a, b], previous);
    expect(out.get(b)).toBe(preferredIdentity(a));
    expect(out.get(a)).toBe(preferredIdentity(a) + 1);
    // A set that no longer exists gives its number up; the others keep theirs.
    const later = allocateIdentities([a], out);
    expect(later).toEqual(new Map([[a, preferredIdentity(a) + 1]]));
  });

  it("ignores a previous number outside the key's range", () => {
    const a = key('a');
    expect(allocateIdentities([a], new Map([[a, 5]])).get(a)).toBe(preferredIdentity(a));
  });
});
