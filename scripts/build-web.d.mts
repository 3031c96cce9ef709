// Types of scripts/build-web.mjs for the TypeScript test that imports it.
export declare const ORT_FILES: readonly string[];
export declare function buildWeb(opts?: {
  outdir?: string;
  minify?: boolean;
}): Promise<{ outdir: string; bytes: number; workerBytes: number; inputs: string[] }>;
