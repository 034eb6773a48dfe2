// ONNX Runtime CPU timing for bench_runtime.py: loads one exported tower, runs it on
// --batch inputs with --threads intra-op threads and full graph optimisation, and prints the
// median milliseconds of --iterations runs (after one warm-up) and the peak resident memory.
//
// usage: node ort_bench.js MODEL.onnx --kind vision|text [--batch 1] [--size 224]
//                          [--threads N] [--iterations 5]
'use strict';
const ort = require('onnxruntime-node');

function option(name, fallback) {
  const at = process.argv.indexOf('--' + name);
  return at > 0 ? process.argv[at + 1] : fallback;
}

function feeds(kind, batch, size) {
  if (kind === 'vision') {
    const pixels = new Float32Array(batch * 3 * size * size);
    let seed = 1;
    for (let i = 0; i < pixels.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      pixels[i] = (seed / 2147483648) * 4 - 2;
    }
    return { pixels: new ort.Tensor('float32', pixels, [batch, 3, size, size]) };
  }
  const ids = new BigInt64Array(batch * 77);
  const text = [49406, 320, 1125, 539, 320, 2368, 49407];
  for (let b = 0; b < batch; b++)
    text.forEach((id, i) => { ids[b * 77 + i] = BigInt(id); });
  return { ids: new ort.Tensor('int64', ids, [batch, 77]) };
}

async function main() {
  const path = process.argv[2];
  const kind = option('kind', 'vision');
  const batch = Number(option('batch', '1'));
  const size = Number(option('size', '224'));
  const threads = Number(option('threads', '0'));
  const iterations = Number(option('iterations', '5'));
  const session = await ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const input = feeds(kind, batch, size);
  await session.run(input); // warm-up
  const times = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await session.run(input);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const version = require('onnxruntime-node/package.json').version;
  console.log(JSON.stringify({
    backend: 'onnxruntime ' + version + ' cpu',
    kind, batch, threads, ms: times[Math.floor(iterations / 2)],
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  }));
}

main().catch((error) => { console.error(error.message || error); process.exit(1); });
