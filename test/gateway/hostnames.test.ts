import { describe, expect, it } from 'vitest';
import { covers, hostMatches, intersectHostnames } from '../../src/gateway/hostnames.js';

describe('hostMatches', () => {
  it('matches one or more labels in place of a wildcard, never the bare suffix', () => {
    expect(hostMatches('foo.example.com', '*.example.com')).toBe(true);
    expect(hostMatches('a.b.example.com', '*.example.com')).toBe(true);
    expect(hostMatches('example.com', '*.example.com')).toBe(false);
    expect(hostMatches('fooexample.com', '*.example.com')).toBe(false);
    expect(hostMatches('foo.example.com', 'foo.example.com')).toBe(true);
    expect(hostMatches('bar.example.com', 'foo.example.com')).toBe(false);
  });
});

describe('intersectHostnames (HTTPRoute hostnames against the listener hostname)', () => {
  it('takes the other side when one side is unset', () => {
    expect(intersectHostnames(undefined, [])).toEqual(['*']);
    expect(intersectHostnames('foo.com', [])).toEqual(['foo.com']);
    expect(intersectHostnames(undefined, ['b.com', 'a.com', 'a.com'])).toEqual(['a.com', 'b.com']);
  });
  it('keeps route hostnames inside a listener wildcard and the listener hostname inside a route wildcard', () => {
    expect(
      intersectHostnames('*.wildcard.io', ['wildcard.io', 'foo.wildcard.io', 'foo.bar.wildcard.io']),
    ).toEqual(['foo.bar.wildcard.io', 'foo.wildcard.io']);
    expect(intersectHostnames('very.specific.com', ['*.specific.com', 'non.matching.com'])).toEqual([
      'very.specific.com',
    ]);
  });
  it('yields the more specific of two wildcards', () => {
    expect(intersectHostnames('*.example.com', ['*.a.example.com'])).toEqual(['*.a.example.com']);
    expect(intersectHostnames('*.a.example.com', ['*.example.com'])).toEqual(['*.a.example.com']);
    expect(intersectHostnames('*.example.com', ['*.example.org'])).toEqual([]);
  });
  it('is empty when nothing intersects', () => {
    expect(intersectHostnames('foo.com', ['bar.com', '*.foo.com'])).toEqual([]);
  });
});

describe('covers', () => {
  it('orders hostnames by the hosts they match', () => {
    expect(covers('*', 'anything.example')).toBe(true);
    expect(covers('*.example.com', 'a.example.com')).toBe(true);
    expect(covers('*.example.com', '*.a.example.com')).toBe(true);
    expect(covers('*.a.example.com', '*.example.com')).toBe(false);
    expect(covers('a.example.com', '*.example.com')).toBe(false);
    expect(covers('a.example.com', 'a.example.com')).toBe(true);
  });
});
