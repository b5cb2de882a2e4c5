// Types of bench/http-client.mjs, for the tests that import it.
export interface HttpClientOptions {
  host: string;
  port: number | string;
  maxSockets?: number;
}

export declare class HttpClient {
  constructor(options: HttpClientOptions);
  /** POSTs `body`; `done` gets the status and body text, or status -1 on a connection failure. */
  post(path: string, contentType: string, body: Buffer, done: (status: number, text: string) => void): void;
  /** Closes every connection; requests in flight or waiting end with status -1. */
  destroy(): void;
  /** Connections open now. */
  readonly open: number;
}
