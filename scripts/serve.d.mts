// Types of scripts/serve.mjs for the TypeScript test that imports it.
export declare const MIME: Readonly<Record<string, string>>;
export declare function startServer(opts?: {
  root?: string;
  port?: number;
  host?: string;
  mounts?: Record<string, string>;
  log?: boolean;
}): Promise<{ url: string; port: number; close(): Promise<void> }>;
