/**
 * The client side of bench/xds-fanout.ts, run as its own process so that the clients' work does not share
 * the event loop with the server being measured (it still shares the machine's cores).
 *
 *   tsx bench/fanoutClients.ts <unix:///path | host:port> <clients> <sotw|delta>
 *
 * The first client behaves like Envoy in full (test/helpers/adsClient.ts: wildcard CDS/LDS, EDS/RDS for
 * what it is sent, decoding and checking every resource). The others stand in for Envoys that decode in
 * their own processes: each has its own gRPC channel and ADS stream, subscribes to the names the first
 * client learned, reads only the envelope of each response (type, version, nonce) and ACKs it. Prints
 * `ready` once every stream has a route configuration, then runs until stdin closes.
 */

import { Client, type ClientDuplexStream, credentials } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { TypeUrl } from '../src/xds/proto.js';
import {
  adsDeltaPath,
  adsSotwPath,
  EnvoyLike,
  encodeDeltaRequest,
  encodeSotwRequest,
  XdsTestClient,
} from '../test/helpers/adsClient.js';

const [address, countArg, mode] = process.argv.slice(2);
const count = Number(countArg);
if (address === undefined || !Number.isInteger(count) || count < 1 || (mode !== 'sotw' && mode !== 'delta')) {
  process.stderr.write('usage: fanoutClients.ts <address> <clients> <sotw|delta>\n');
  process.exit(2);
}
const delta = mode === 'delta';

/** Type URL, version and nonce of a (Delta)DiscoveryResponse, without decoding its resources. */
function envelope(buf: Buffer): { typeUrl: string; version: string; nonce: string } {
  const r = protobuf.Reader.create(buf);
  let typeUrl = '';
  let version = '';
  let nonce = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    // Both messages: 1 = (system_)version_info, 4 = type_url, 5 = nonce.
    if (wire === 2 && field === 1) version = r.string();
    else if (wire === 2 && field === 4) typeUrl = r.string();
    else if (wire === 2 && field === 5) nonce = r.string();
    else r.skipType(wire);
  }
  return { typeUrl, version, nonce };
}

const wildcardTypes = new Set<string>([TypeUrl.Cluster, TypeUrl.Listener]);

class LightClient {
  readonly #client: Client;
  readonly #call: ClientDuplexStream<Buffer, Buffer>;
  readonly #names: ReadonlyMap<string, readonly string[]>;
  gotRoutes = false;

  constructor(id: string, names: ReadonlyMap<string, readonly string[]>) {
    this.#client = new Client(address as string, credentials.createInsecure());
    this.#names = names;
    this.#call = this.#client.makeBidiStreamRequest<Buffer, Buffer>(
      delta ? adsDeltaPath : adsSotwPath,
      (b) => b,
      (b) => b,
    );
    this.#call.on('error', () => {
      // Cancelled at the end of the run.
    });
    this.#call.on('data', (raw: Buffer) => this.#onResponse(raw));
    const node = { id, cluster: 'bench' };
    for (const [typeUrl, list] of names) {
      const explicit = wildcardTypes.has(typeUrl) ? [] : [...list];
      this.#call.write(
        delta
          ? encodeDeltaRequest({ typeUrl, subscribe: explicit, node })
          : encodeSotwRequest({ typeUrl, resourceNames: explicit, node }),
      );
    }
  }

  #onResponse(raw: Buffer): void {
    const { typeUrl, version, nonce } = envelope(raw);
    if (typeUrl === TypeUrl.RouteConfiguration) this.gotRoutes = true;
    const explicit = wildcardTypes.has(typeUrl) ? [] : [...(this.#names.get(typeUrl) ?? [])];
    this.#call.write(
      delta
        ? encodeDeltaRequest({ typeUrl, responseNonce: nonce })
        : encodeSotwRequest({ typeUrl, versionInfo: version, responseNonce: nonce, resourceNames: explicit }),
    );
  }

  close(): void {
    this.#call.cancel();
    this.#client.close();
  }
}

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) {
      process.stderr.write(`fanoutClients: ${what} within ${timeoutMs} ms failed\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const full = new XdsTestClient(address);
const node = { id: 'fanout-0', cluster: 'bench' };
const envoy = delta ? EnvoyLike.delta(full.delta(), { node }) : EnvoyLike.sotw(full.sotw(), { node });
envoy.start();
await waitFor(
  'the first client getting routes',
  () => (envoy.holds.get(TypeUrl.RouteConfiguration)?.size ?? 0) > 0,
  120_000,
);
const names = new Map<string, readonly string[]>(
  [...envoy.holds]
    .filter(([, held]) => held.size > 0)
    .map(([typeUrl, held]) => [typeUrl, [...held.keys()].sort()]),
);
const light: LightClient[] = [];
for (let i = 1; i < count; i++) light.push(new LightClient(`fanout-${i}`, names));
await waitFor('every client getting routes', () => light.every((c) => c.gotRoutes), 120_000);
process.stdout.write('ready\n');

process.stdin.resume();
process.stdin.on('end', () => {
  for (const c of light) c.close();
  full.close();
  process.exit(0);
});
