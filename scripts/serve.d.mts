// Types of scripts/serve.mjs for the TypeScript tests that import it.
export declare const MIME: Readonly<Record<string, string>>;
export declare const MAX_URL: number;
export declare const MAX_HEADER_BYTES: number;
export declare class ServeError extends Error {}
export declare const ISOLATION_HEADERS: Readonly<Record<string, string>>;
export declare function startServer(opts?: {
  web?: string;
  model?: string;
  port?: number;
  host?: string;
  mounts?: Record<string, string>;
  maxActive?: number;
  log?: boolean;
}): Promise<{ url: string; port: number; close(): Promise<void> }>;
