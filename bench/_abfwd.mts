const trees = process.argv.slice(2, 4);
const reps = Number(process.argv[4] ?? 10);
async function make(tree: string) {
  const { initParams, SMALL_UNET } = await import(`${tree}/src/nn/unet.ts`);
  const { createDenoiser } = await import(`${tree}/src/sample/denoiser.ts`);
  const { nodeEngine } = await import(`${tree}/src/engine/node.ts`);
  return createDenoiser(nodeEngine(), SMALL_UNET, initParams(SMALL_UNET, 'fixture', 0), 64, { threads: 2 });
}
const A = await make(trees[0]!), B = await make(trees[1]!);
const x = { data: Float32Array.from({ length: 65536 }, (_, i) => Math.sin(i)), shape: [64, 1, 32, 32] };
const t = Int32Array.from({ length: 64 }, (_, i) => i * 15);
const ya = (await A.denoise(x, t)).data, yb = (await B.denoise(x, t)).data;
let md = 0; for (let i = 0; i < ya.length; i++) md = Math.max(md, Math.abs(ya[i]! - yb[i]!)); console.log('max diff', md.toExponential(2));
await A.denoise(x, t); await B.denoise(x, t);
const ta: number[] = [], tb: number[] = [];
for (let i = 0; i < reps; i++) {
  let t0 = performance.now(); await A.denoise(x, t); ta.push(performance.now() - t0);
  t0 = performance.now(); await B.denoise(x, t); tb.push(performance.now() - t0);
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
console.log(`A median ${med(ta).toFixed(1)} ms; B median ${med(tb).toFixed(1)} ms; median ratio B/A ${med(ta.map((a, i) => tb[i]! / a)).toFixed(3)}`);
