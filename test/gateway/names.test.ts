import { describe, expect, it } from 'vitest';
import {
  backendName,
  listenerName,
  routeConfigName,
  routeName,
  secretName,
  virtualHostName,
} from '../../src/model/names.js';

describe('names', () => {
  it('names backends by Service port, never by rule position', () => {
    expect(backendName('default', 'blue', 80)).toBe('default/blue/80');
  });
  it('names listeners by socket, bracketing IPv6 addresses', () => {
    expect(listenerName('0.0.0.0', 8080)).toBe('listener/0.0.0.0/8080');
    expect(listenerName('::1', 8080)).toBe('listener/[::1]/8080');
    expect(routeConfigName('listener/0.0.0.0/8080')).toBe('listener/0.0.0.0/8080');
  });
  it('names virtual hosts, secrets and routes from what they are', () => {
    expect(virtualHostName('listener/0.0.0.0/8080', '*.example.com')).toBe(
      'listener/0.0.0.0/8080/*.example.com',
    );
    expect(secretName('infra', 'tls')).toBe('infra/tls');
    expect(routeName('HTTPRoute', 'ns', 'web', 2, 1)).toBe('httproute/ns/web/rule/2/match/1');
  });
});
