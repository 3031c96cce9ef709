// Output paths are checked before the work (spawned as users run the command, bin/ddpm.mjs): a missing
// folder, a folder ('.' or an existing one), a wrong extension, two options naming one file, a file where a
// folder belongs, a read-only file system and a disk too small (tmpfs mounts, where the test may mount) fail
// at once with exit code 2, a message naming the option, the path and what to do, before any sampling, and
// leave no file behind. Several outputs are all-or-nothing: when the last write fails after sampling, none
// of them is written and no temporary file survives.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { mountTmpfs } from '../src/util/testMounts.js';
import { ddpmIn, startDdpm } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-outputs-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const start = (args: readonly string[]) => startDdpm(args, { cwd: TMP });
const ddpm = ddpmIn(TMP);

/** Every file under dir (recursively), for "nothing was written". */
const listing = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort();

interface BadCase {
  readonly args: readonly string[];
  /** Every string must appear in stderr. */
  readonly says: readonly string[];
}

/** Each case fails with exit code 2 and its message, before any network call, writing nothing. */
async function expectRefused(cases: readonly BadCase[], watch: string): Promise<void> {
  for (const c of cases) {
    const before = listing(watch);
    const r = await ddpm([...c.args, '--threads', '1']);
    const what = `ddpm ${c.args.join(' ')}`;
    assert.equal(r.code, 2, `${what}: exit code ${r.code}\n${r.stderr}`);
    for (const s of c.says) assert.ok(r.stderr.includes(s), `${what}: stderr lacks "${s}":\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\[[#.]+\]/, `${what}: the work started before the check`);
    assert.doesNotMatch(r.stderr, /parameters, data/, `${what}: training started before the check`);
    assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, `${what}: a stack trace`);
    assert.deepEqual(listing(watch), before, `${what}: wrote files`);
  }
}

// Quick if they ran: one image, two steps (the checks must fail before even this).
const SAMPLE = ['sample', '--n', '1', '--steps', '2'];
const TRAIN = [
  'train',
  '--ch',
  '32',
  '--ch-mult',
  '1,2',
  '--res-blocks',
  '1',
  '--attn',
  '8',
  '--resolution',
  '16',
];

describe('output paths', () => {
  it('missing folders, folders, wrong extensions and clashes fail before the work', {
    timeout: 240_000,
  }, async () => {
    mkdirSync(join(TMP, 'adir'));
    writeFileSync(join(TMP, 'afile'), 'x');
    await expectRefused(
      [
        {
          args: [...SAMPLE, '--out', 'nodir/x.png'],
          says: [
            'ddpm sample: --out nodir/x.png: folder nodir does not exist; create it first (mkdir -p nodir)',
          ],
        },
        {
          args: [...SAMPLE, '--out', '.'],
          says: ['--out .: . is a folder; give a file name, e.g. output.png'],
        },
        // an existing folder without the trailing / is a mistake, not the folder mode (test/sampleFolder.test.ts)
        {
          args: [...SAMPLE, '--out', 'adir'],
          says: [
            '--out adir: adir is a folder; give a file name, e.g. adir/output.png, or end it with / (adir/)',
          ],
        },
        {
          args: [...SAMPLE, '--out', 'grid'],
          says: [
            '--out grid: writes PNG, so the name must end in .png, e.g. grid.png; or grid/ for a folder',
          ],
        },
        {
          args: [...SAMPLE, '--out', 'x.jpg'],
          says: ['--out x.jpg: writes PNG, so the name must end in .png (not .jpg), e.g. x.png'],
        },
        {
          args: [...SAMPLE, '--gif', 'chain.png'],
          says: ['--gif chain.png: writes GIF, so the name must end in .gif (not .png), e.g. chain.gif'],
        },
        {
          args: [...SAMPLE, '--gif', 'nodir/c.gif'],
          says: ['--gif nodir/c.gif: folder nodir does not exist'],
        },
        {
          args: [...SAMPLE, '--progressive', 'afile/x0.png'],
          says: [`--progressive afile/x0.png: ${join(TMP, 'afile')} is a file, not a folder`],
        },
        {
          args: [...SAMPLE, '--out', 'a.png', '--progressive', './a.png'],
          says: ['--out and --progressive both name ./a.png; give each its own file'],
        },
        {
          args: ['bpd', '--n', '1', '--json', 'nodir/b.json'],
          says: ['ddpm bpd: --json nodir/b.json: folder nodir does not exist'],
        },
        {
          args: ['bpd', '--n', '1', '--json', 'b.txt'],
          says: ['--json b.txt: writes JSON, so the name must end in .json'],
        },
        { args: ['bpd', '--n', '1', '--json', 'adir'], says: ['--json adir: adir is a folder'] },
        {
          args: ['interpolate', '--t', '2', '--out', 'adir'],
          says: ['ddpm interpolate: --out adir: adir is a folder'],
        },
        {
          args: ['interpolate', '--t', '2', '--out', 'i.gif'],
          says: ['--out i.gif: writes PNG, so the name must end in .png'],
        },
        {
          args: [...TRAIN, '--run', 'afile'],
          says: ['ddpm train: --run afile: is a file; --run takes a folder'],
        },
        {
          args: [...TRAIN, '--run', 'afile/run'],
          says: [`--run afile/run: ${join(TMP, 'afile')} is a file, not a folder`],
        },
      ],
      TMP,
    );
  });

  it('a read-only file system fails before the work', { timeout: 120_000 }, async (t) => {
    const m = mountTmpfs('read-only');
    if (typeof m === 'string') return t.skip(m);
    try {
      const ro = `folder ${m.dir} is on a read-only file system; choose a folder on a writable disk`;
      await expectRefused(
        [
          {
            args: [...SAMPLE, '--out', join(m.dir, 'x.png')],
            says: [`--out ${join(m.dir, 'x.png')}: ${ro}`],
          },
          {
            args: ['bpd', '--n', '1', '--json', join(m.dir, 'b.json')],
            says: [`--json ${join(m.dir, 'b.json')}: ${ro}`],
          },
          { args: ['interpolate', '--out', join(m.dir, 'i.png')], says: [ro] },
          {
            args: [...TRAIN, '--run', join(m.dir, 'run')],
            says: [`--run ${join(m.dir, 'run')}: cannot create it: ${ro}`],
          },
        ],
        TMP,
      );
    } finally {
      m.unmount();
    }
  });

  it('a disk too small fails before the work', { timeout: 120_000 }, async (t) => {
    const m = mountTmpfs('full', 32);
    if (typeof m === 'string') return t.skip(m);
    try {
      await expectRefused(
        [
          {
            // 64 images of 32x32: up to 64 KB of PNG.
            args: ['sample', '--n', '64', '--steps', '2', '--out', join(m.dir, 'x.png')],
            says: [`the disk holding ${m.dir} has `, ' KB free; the PNG file needs up to 66 KB'],
          },
          {
            args: [...TRAIN, '--run', join(m.dir, 'run')],
            says: [
              `the disk holding ${m.dir} has `,
              ' KB free; a checkpoint and its temporary copy need about 14.0 MB',
            ],
          },
        ],
        m.dir,
      );
    } finally {
      m.unmount();
    }
  });

  it('sample --out --gif --progressive: all or nothing, no temporary file', {
    timeout: 180_000,
  }, async () => {
    const out = join(TMP, 'all');
    const late = join(TMP, 'late');
    mkdirSync(out);
    mkdirSync(late);
    const args = [
      ...['sample', '--n', '1', '--steps', '300', '--frames', '2', '--threads', '1'],
      ...['--out', join(out, 's.png'), '--gif', join(out, 's.gif'), '--progressive', join(late, 'x0.png')],
    ];
    // The checks pass; the folder of the last output disappears while sampling.
    const { done, stderr } = start(args);
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    while (!finished && !stderr().includes('sample [')) await new Promise((r) => setTimeout(r, 10));
    rmSync(late, { recursive: true });
    const r = await done;
    assert.equal(r.code, 1, r.stderr);
    assert.ok(
      r.stderr.includes(`ddpm sample: cannot write ${join(late, 'x0.png')}: folder ${late} does not exist`),
      r.stderr,
    );
    assert.doesNotMatch(r.stderr, /\.tmp-/, 'names no temporary file');
    assert.deepEqual(listing(out), [], 'no output and no temporary file written');
    assert.doesNotMatch(r.stdout, /^wrote /m, 'claims no file');
  });
});
