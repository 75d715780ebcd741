import { performance } from 'node:perf_hooks';
import { ControlPlane } from '../src/controlPlane.js';
import { silentLogger } from '../src/log.js';
import { objectSet } from './xds-translate-push.js';

const n = Number(process.argv[2] ?? 10000);
const cp = new ControlPlane({ logger: silentLogger });
let t = performance.now();
cp.apply(objectSet(n));
console.log('cold', (performance.now() - t).toFixed(1));
for (let k = 0; k < 3; k++) {
  const o = objectSet(n, { changed: { index: k, path: `/changed-${k}` } });
  t = performance.now();
  const r = cp.apply(o);
  console.log('one change', (performance.now() - t).toFixed(1), 'encoded', r.encoded);
}
