import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, type BackendReply, h2cBackend, http1Backend } from '../helpers/backend.js';
import { addStaticProxy, startTestEnvoy, type TestEnvoy, testListenerAddress } from '../helpers/envoy.js';
import { randomLoopback } from '../helpers/net.js';

/** An HTTP/1.1 request on a fresh connection; resolves with status, headers and parsed JSON body. */
function h1Request(
  host: string,
  port: number,
  opts: { method?: string; path: string; body?: string; headers?: Record<string, string> },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: BackendReply }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host,
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: opts.headers,
        agent: false,
        timeout: 5000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An h2c (prior knowledge) request. */
function h2cRequest(
  host: string,
  port: number,
  path: string,
): Promise<{ status: number; body: BackendReply }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${host}:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': path, ':method': 'GET', 'x-probe': 'p' });
    req.setTimeout(5000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    let status = 0;
    let text = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
    });
    req.on('end', () => {
      session.close();
      resolve({ status, body: JSON.parse(text) });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('test backends', () => {
  const started: Backend[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((b) => b.close()));
  });

  it('HTTP/1.1: names itself and echoes method, path, headers and body size; counts requests', async () => {
    const host = randomLoopback();
    const b = await http1Backend.start({ host, port: 0, name: 'blue' });
    started.push(b);
    expect(b.port).toBeGreaterThan(0);
    const r = await h1Request(host, b.port, {
      method: 'POST',
      path: '/echo?q=1',
      body: 'hello',
      headers: { 'x-probe': 'p' },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-backend']).toBe('blue');
    expect(r.body).toMatchObject({
      backend: 'blue',
      protocol: 'HTTP/1.1',
      method: 'POST',
      path: '/echo?q=1',
      bodyBytes: 5,
      headers: expect.objectContaining({ 'x-probe': 'p', host: `${host}:${b.port}` }),
    });
    await h1Request(host, b.port, { path: '/' });
    expect(b.requests).toBe(2);
  });

  it('h2c: answers the same JSON over cleartext HTTP/2, without pseudo-headers', async () => {
    const host = randomLoopback();
    const b = await h2cBackend.start({ host, port: 0, name: 'green' });
    started.push(b);
    const r = await h2cRequest(host, b.port, '/h2?x=y');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      backend: 'green',
      protocol: 'h2c',
      method: 'GET',
      path: '/h2?x=y',
      bodyBytes: 0,
    });
    expect(r.body.headers['x-probe']).toBe('p');
    expect(Object.keys(r.body.headers).some((k) => k.startsWith(':'))).toBe(false);
    expect(b.requests).toBe(1);
  });

  it('close() releases the port even with a client connection open', async () => {
    const host = randomLoopback();
    const b = await http1Backend.start({ host, port: 0, name: 'c' });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host, port: b.port, path: '/', agent }, (res) => res.resume().on('end', resolve))
        .on('error', reject);
    });
    await b.close(); // would hang on the idle keep-alive connection if close() did not end it
    await expect(h1Request(host, b.port, { path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    agent.destroy();
    // The same port can be bound again.
    const again = await http1Backend.start({ host, port: b.port, name: 'c2' });
    started.push(again);
    expect(again.port).toBe(b.port);
  });
});

describe('test backends behind a real Envoy', () => {
  const host = randomLoopback();
  let one: Backend;
  let two: Backend;
  let envoy: TestEnvoy;
  let listener: { host: string; port: number };

  beforeAll(async () => {
    one = await http1Backend.start({ host, port: 0, name: 'one' });
    two = await h2cBackend.start({ host, port: 0, name: 'two' });
    envoy = await startTestEnvoy({
      edit: (b) =>
        addStaticProxy(b, host, [
          { prefix: '/two', cluster: 'two', host, port: two.port, h2c: true },
          { prefix: '/', cluster: 'one', host, port: one.port },
        ]),
    });
    await envoy.supervisor.waitReady(10_000);
    listener = await testListenerAddress(envoy.supervisor.adminUrl ?? '');
  });
  afterAll(async () => {
    await envoy?.close();
    await one?.close();
    await two?.close();
  });

  it('routes HTTP/1.1 to the HTTP/1.1 backend and to the h2c backend', async () => {
    const r1 = await h1Request(listener.host, listener.port, { path: '/one/a' });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ backend: 'one', protocol: 'HTTP/1.1', path: '/one/a' });
    // Envoy added its request id on the way.
    expect(r1.body.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

    const r2 = await h1Request(listener.host, listener.port, { method: 'PUT', path: '/two/b', body: 'abc' });
    expect(r2.status).toBe(200);
    expect(r2.body).toMatchObject({
      backend: 'two',
      protocol: 'h2c',
      method: 'PUT',
      path: '/two/b',
      bodyBytes: 3,
    });
    expect(one.requests).toBe(1);
    expect(two.requests).toBe(1);
  });

  it('forwards Envoy access logs (stdout) as structured records once Envoy stops', async () => {
    await h1Request(listener.host, listener.port, { path: '/logged' });
    // Envoy buffers access logs; stop() waits for its output to close, so every line is in by then.
    await envoy.supervisor.stop();
    const access = envoy.records.filter((r) => r['stream'] === 'stdout').map((r) => r['access']);
    expect(access).toContainEqual({ path: '/logged', code: 200, upstream: 'one' });
    expect(access).toContainEqual({ path: '/two/b', code: 200, upstream: 'two' });
    for (const r of envoy.records.filter((x) => x['stream'] === 'stdout'))
      expect(r['component']).toBe('envoy');
  });
});
