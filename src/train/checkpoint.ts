// Training checkpoints on disk: the format (checkpointCodec.ts: one safetensors file holding the weights,
// their EMA, Adam's moments and, as JSON metadata, everything else a resumed run needs) written
// atomically (temporary file, fsync, rename, fsync of the folder): a run killed at any moment leaves
// either the previous checkpoint or the new one, never a torn file.

import { existsSync, readFileSync } from 'node:fs';
import { writePartsAtomic } from '../util/atomicFile.js';
import { type CheckpointState, decodeCheckpoint, encodeCheckpoint } from './checkpointCodec.js';

export {
  CHECKPOINT_FORMAT,
  type CheckpointState,
  decodeCheckpoint,
  encodeCheckpoint,
  type ResumeState,
  resumeState,
} from './checkpointCodec.js';

export function saveCheckpoint(
  path: string,
  st: CheckpointState,
  shapes: ReadonlyMap<string, readonly number[]>,
): void {
  writePartsAtomic(path, encodeCheckpoint(st, shapes));
}

export function loadCheckpoint(path: string): CheckpointState {
  if (!existsSync(path)) throw new Error(`checkpoint: ${path} does not exist`);
  return decodeCheckpoint(readFileSync(path), path);
}
